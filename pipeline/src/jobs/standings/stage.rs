//! The track stage of `race_standings`: a timely operator, exchanged by
//! participant, that keeps each participant's observations sorted by time,
//! folds them from the checkpoint before the earliest change, and emits
//! their progress and split times as differential updates; its state is
//! what a snapshot keeps ([`TrackState`]).
//!
//! **The lateness horizon.** Each participant remembers the latest time it
//! has read of each kind of observation (fixes from `pace.gps`, crossings
//! from `pace.timing`), in arrival order: the order of the participant's
//! partition of that topic, so the same input gives the same judgement at
//! any worker count and any timing. A point more than the race's
//! `allowed_lateness_s` behind the latest of its kind read before it is
//! too late ([`Why::TooLate`]): counted, sent to the dead letters, not folded. Everything
//! older than the horizon (the least of those latest times, minus the
//! allowance) is folded into a base state at a checkpoint and forgotten, so
//! a participant holds about the horizon's worth of observations. The one
//! judgement that depends on timing: a participant's *first* observation of
//! a second kind, arriving behind the base the other kind moved; it is too
//! late as well.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use foldhash::{HashMap as FastMap, HashSet as FastSet};
use std::ops::Bound;
use std::rc::Rc;
use std::sync::Arc;

use differential_dataflow::lattice::Lattice;
use differential_dataflow::{AsCollection, VecCollection};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::vec::Broadcast;
use timely::order::TotalOrder;
use timely::progress::Timestamp;

use super::geo::Geometry;
use super::{
    CHECKPOINT_EVERY, Definition, Entry, Fold, Listed, Listing, MAX_HELD, MAX_OBSERVATIONS, Obs,
    Observation, Progress, Race, Refusal, Spec, Tracked, Why,
};
use crate::jobs::hash;
use crate::jobs::stash::Stash;
use crate::snapshot::{Checkpoint, In, Out, Part};

/// Which of a participant's observations the next fold must start from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Dirty {
    Clean,
    From((i64, Obs)),
    All,
}

/// One participant's state in the track operator. A snapshot leaves out
/// the checkpoints: a late point after a restore re-folds from the base.
/// The operator holds each in an `Arc` that a snapshot shares while its
/// writer thread serializes it; modifying one then copies it
/// (`Arc::make_mut`), so a snapshot costs the worker a copy of the
/// participants that change during the write, not of the race.
#[derive(Clone, Serialize, Deserialize)]
pub struct Participant {
    observations: BTreeSet<(i64, Obs)>,
    /// Fold states after the keyed observation, every CHECKPOINT_EVERY.
    #[serde(skip)]
    checkpoints: BTreeMap<(i64, Obs), Fold>,
    /// The fold after the last observation.
    last: Option<((i64, Obs), Fold)>,
    /// The state the kept observations start from, once old ones are forgotten.
    base: Option<((i64, Obs), Fold)>,
    splits: Vec<i64>,
    emitted: Option<(Progress, Vec<i64>)>,
    dirty: Dirty,
    /// The latest time read of each kind of observation ([`Obs::source`]).
    latest: [Option<i64>; 2],
    /// Read before the race was defined, in arrival order: each with how
    /// far behind the latest of its kind it arrived (ms) and its origin.
    held: Vec<Held>,
    /// The latest entrant record of the participant: its order and listing.
    entrant: Option<(i64, Listed)>,
}

/// An observation read before its race was defined: judged once it is.
#[derive(Clone, Serialize, Deserialize)]
struct Held {
    item: (i64, Obs),
    behind_ms: i64,
    origin: Option<(i32, i64)>,
}

impl Participant {
    fn new() -> Self {
        Self {
            observations: BTreeSet::new(),
            checkpoints: BTreeMap::new(),
            last: None,
            base: None,
            splits: Vec::new(),
            emitted: None,
            dirty: Dirty::Clean,
            latest: [None; 2],
            held: Vec::new(),
            entrant: None,
        }
    }

    /// What the race lists of this participant: its entrant record, or
    /// else the definition's listing.
    fn listing(&self, race: &Race, id: &str) -> Listing {
        match &self.entrant {
            Some((_, l)) => Some(l.clone()),
            None => race.listing(id),
        }
    }

    /// Whether this participant has anything to show or judge.
    fn is_empty(&self) -> bool {
        self.held.is_empty()
            && self.emitted.is_none()
            && self.observations.is_empty()
            && self.base.is_none()
    }

    /// Whether this participant has a row in `race`: once read, or, in a
    /// chip-timed race, once entered (the start list: not started, and
    /// past the first cutoff, did not start).
    fn shown(&self, race: &Race) -> bool {
        !self.is_empty() || (self.entrant.is_some() && matches!(race.geometry, Geometry::Mats(_)))
    }

    /// Reads one observation: how far behind the latest of its kind it is,
    /// ms (0 when it is the latest).
    fn arrive(&mut self, item: &(i64, Obs)) -> i64 {
        let latest = &mut self.latest[item.1.source()];
        let behind = latest.map_or(0, |l| (l - item.0).max(0));
        *latest = Some(latest.map_or(item.0, |l| l.max(item.0)));
        behind
    }

    /// Whether an observation that arrived `behind_ms` behind is outside
    /// the horizon of a race allowing `allowed_ms`, or behind the base.
    fn too_late(&self, item: &(i64, Obs), behind_ms: i64, allowed_ms: i64) -> bool {
        behind_ms > allowed_ms || self.base.as_ref().is_some_and(|b| *item <= b.0)
    }

    /// Adds (`diff > 0`) or removes an observation that was judged in
    /// time; whether the set changed.
    fn apply(&mut self, item: (i64, Obs), diff: isize) -> bool {
        let changed = if diff > 0 {
            self.observations.insert(item.clone())
        } else {
            self.observations.remove(&item)
        };
        if changed {
            self.touch(&item);
        }
        changed
    }

    fn touch(&mut self, key: &(i64, Obs)) {
        self.dirty = match std::mem::replace(&mut self.dirty, Dirty::Clean) {
            Dirty::All => Dirty::All,
            Dirty::From(k) if k <= *key => Dirty::From(k),
            _ => Dirty::From(key.clone()),
        };
    }

    /// Re-folds what changed; returns the participant's new progress and splits.
    fn refold(&mut self, race: &Race, id: &str) -> (Progress, Vec<i64>) {
        let listing = self.listing(race, id);
        let initial = |base: &Option<((i64, Obs), Fold)>| match base {
            Some((k, f)) => (f.clone(), Some(k.clone())),
            None => (Fold::new(race, listing.as_deref()), None),
        };
        // The last fold is taken, not cloned: it is replaced below.
        let (mut fold, after) = match std::mem::replace(&mut self.dirty, Dirty::Clean) {
            Dirty::Clean => match self.last.take() {
                Some((k, f)) => (f, Some(k)),
                None => initial(&self.base),
            },
            Dirty::All => {
                self.checkpoints.clear();
                initial(&self.base)
            }
            Dirty::From(from) => match self.last.take() {
                Some((k, f)) if k < from => (f, Some(k)),
                _ => {
                    self.checkpoints.split_off(&from);
                    match self.checkpoints.last_key_value() {
                        Some((k, f)) => (f.clone(), Some(k.clone())),
                        None => initial(&self.base),
                    }
                }
            },
        };
        self.splits.truncate(fold.splits);
        let range = match &after {
            Some(k) => (Bound::Excluded(k.clone()), Bound::Unbounded),
            None => (Bound::Unbounded, Bound::Unbounded),
        };
        let mut last_key = after;
        for key in self.observations.range(range) {
            fold.step(race, key.0, &key.1, &mut self.splits);
            if fold.n % CHECKPOINT_EVERY == 0 {
                self.checkpoints.insert(key.clone(), fold.clone());
            }
            last_key = Some(key.clone());
        }
        self.splits.truncate(fold.splits);
        let summary = fold.summary(race, id, &listing, &self.splits);
        self.last = last_key.map(|k| (k, fold));
        (summary, self.splits.clone())
    }

    /// Forgets the observations before the horizon of a race allowing
    /// `allowed_ms` (and the oldest beyond [`MAX_OBSERVATIONS`], whatever
    /// their time), keeping the fold state they lead to as the base: the
    /// state at the latest checkpoint before the horizon.
    fn compact(&mut self, allowed_ms: i64) {
        let horizon = self
            .latest
            .iter()
            .flatten()
            .min()
            .map_or(i64::MIN, |l| l.saturating_sub(allowed_ms));
        let mut key = self
            .checkpoints
            .range(..(horizon, Obs::LEAST))
            .next_back()
            .map(|(k, _)| k.clone());
        if self.observations.len() > MAX_OBSERVATIONS {
            let excess = self.observations.len() - MAX_OBSERVATIONS * 3 / 4;
            let base_n = self.base.as_ref().map_or(0, |b| b.1.n);
            let by_count = self
                .checkpoints
                .iter()
                .find(|(_, f)| f.n >= base_n + excess as u64)
                .map(|(k, _)| k.clone());
            key = key.max(by_count);
        }
        let Some(key) = key else {
            return;
        };
        let fold = self.checkpoints.remove(&key).expect("found above");
        let mut kept = self.observations.split_off(&key);
        kept.remove(&key);
        self.observations = kept;
        self.checkpoints = self.checkpoints.split_off(&key);
        self.base = Some((key, fold));
    }
}

/// The track stage's state on one worker, as a snapshot holds it: the race
/// definitions (order and JSON), which every worker has, and the
/// participants it owns, shared with the operator while the writer thread
/// serializes them.
#[derive(Default)]
pub struct TrackState {
    races: BTreeMap<String, (i64, Spec)>,
    participants: Participants,
}

/// The participants a worker owns, by `(race, participant)`: hashed, so
/// that a point costs one hash of its key, not a walk of a B-tree comparing
/// ids. Nothing depends on their order: what is emitted in a loop over them
/// goes to an operator that does not look at the order, and refusals in
/// such a loop are made in key order.
type Participants = FastMap<(String, String), Arc<Participant>>;

/// The definitions are the section (restored from every worker's part,
/// the greatest order of a race holding), the participants the entries,
/// routed by `(race, participant)` as the stage exchanges them.
impl Part for TrackState {
    fn write_part(&self, out: &mut Out<'_>) -> bincode::Result<()> {
        out.section(&self.races)?;
        self.participants
            .iter()
            .try_for_each(|(k, p)| out.entry(k, p))
    }

    fn read_part(&mut self, part: &mut In<'_>) -> bincode::Result<()> {
        let races: BTreeMap<String, (i64, Spec)> = part.section()?;
        for (race, (order, spec)) in races {
            if self.races.get(&race).is_none_or(|(o, _)| *o < order) {
                self.races.insert(race, (order, spec));
            }
        }
        part.entries(|k, p| {
            self.participants.insert(k, p);
        })
    }
}

/// The participant at `key`, new if there was none; the key is copied only
/// for a new one.
fn participant_at<'p>(
    participants: &'p mut Participants,
    key: &(String, String),
) -> &'p mut Arc<Participant> {
    if !participants.contains_key(key) {
        participants.insert(key.clone(), Arc::new(Participant::new()));
    }
    participants.get_mut(key).expect("inserted above")
}

/// What the track stage reads of each participant, exchanged by
/// `(race, participant)`: observations, and entrant records. The job makes
/// these where it reads its topics ([`super::Standings`]), with no operator
/// of its own between the sources and the exchange.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Read {
    /// A GPS fix or a timing crossing.
    Observation(Observation),
    /// An entrant record.
    Entrant(Entry),
}

impl Read {
    fn key(&self) -> (&str, &str) {
        match self {
            Read::Observation(o) => (&o.race, &o.participant),
            Read::Entrant(((race, participant), _)) => (race, participant),
        }
    }
}

/// The track stage: folds each participant's observations, emits their
/// progress and splits as differential updates.
pub(super) fn track<'s, T>(
    reads: VecCollection<'s, T, Read>,
    definitions: VecCollection<'s, T, Definition>,
    mut checkpoint: Checkpoint<TrackState>,
) -> VecCollection<'s, T, Tracked>
where
    T: Timestamp + Lattice + TotalOrder + Ord + Into<u64>,
{
    let metrics = observability::metrics();
    let outcome = |o: &str| metrics.standings_points.with_label_values(&[o]);
    let (late, corrections, rejected) =
        (outcome("late"), outcome("correction"), outcome("rejected"));
    /// What the track operator reads.
    enum Input {
        Observation(Observation, isize),
        Entrant(Entry, isize),
        Definition(Definition, isize),
    }
    reads
        .inner
        .binary_frontier(
            definitions.inner.broadcast(),
            Exchange::new(|u: &(Read, T, isize)| hash(&u.0.key())),
            Pipeline,
            "Track",
            move |initial, _info| {
                let mut stash: Stash<T, Input> = Stash::default();
                let mut races: HashMap<String, (i64, Spec, Rc<Race>)> = HashMap::new();
                let mut participants = Participants::default();
                let restored = checkpoint.take_restored();
                // The restored state goes out once, at the initial time.
                let mut initial = restored.is_some().then_some(initial);
                if let Some(state) = restored {
                    for (race, (order, spec)) in state.races {
                        let compiled = Rc::new(Race::compile(spec.get()));
                        races.insert(race, (order, spec, compiled));
                    }
                    participants = state.participants;
                }
                // Points of races not defined yet, held on this worker.
                let mut held: usize = participants.values().map(|p| p.held.len()).sum();
                let mut snapshot = move |upto: T, races: &HashMap<String, (i64, Spec, Rc<Race>)>, participants: &Participants| {
                    checkpoint.at_shared(upto.into(), || TrackState {
                        races: races.iter().map(|(k, (o, j, _))| (k.clone(), (*o, j.clone()))).collect(),
                        participants: participants.clone(),
                    });
                };
                move |(obs_in, obs_frontier), (def_in, def_frontier), output| {
                    if let Some(cap) = initial.take() {
                        let mut session = output.session(&cap);
                        let t = cap.time().clone();
                        for ((race, id), p) in &participants {
                            let Some((progress, splits)) = &p.emitted else { continue };
                            session.give((Tracked::Progress(race.clone(), progress.clone()), t.clone(), 1));
                            for (i, time) in splits.iter().enumerate().filter(|(_, t)| super::track::read(t).is_some()) {
                                session.give((Tracked::Split(race.clone(), i as u32 + 1, id.clone(), *time, progress.listing.clone()), t.clone(), 1));
                            }
                        }
                    }
                    obs_in.for_each(|cap, data| {
                        if let Some(cap) = cap.retain_least(output.output_index()) {
                            stash.absorb(&cap, data.drain(..), |x, r| match x {
                                Read::Observation(o) => Input::Observation(o, r),
                                Read::Entrant(e) => Input::Entrant(e, r),
                            });
                        }
                    });
                    def_in.for_each(|cap, data| {
                        if let Some(cap) = cap.retain_least(output.output_index()) {
                            stash.absorb(&cap, data.drain(..), Input::Definition);
                        }
                    });
                    while let Some((cap, batch)) = stash.next_ready(&[obs_frontier, def_frontier]) {
                        let t = cap.time().clone();
                        snapshot(t.clone(), &races, &participants);
                        let (mut obs, mut defs, mut entrants) = (Vec::new(), Vec::new(), Vec::new());
                        for input in batch {
                            match input {
                                Input::Observation(o, r) => obs.push((o, r)),
                                Input::Entrant(e, r) if r > 0 => entrants.push(e),
                                Input::Entrant(..) => {}
                                Input::Definition(d, r) => defs.push((d, r)),
                            }
                        }
                        // A participant's records of one kind are judged in
                        // the order of their partition. Timely delivers an
                        // epoch's containers of one time in any order (an
                        // operator's `for_each_stamp` sorts them unstably), so
                        // that order is restored from the offsets (stable:
                        // records read from no topic keep the order given).
                        obs.sort_by_key(|(o, _)| o.origin);
                        // Definitions: the greatest order holds.
                        let mut redefined = BTreeSet::new();
                        let mut defs: Vec<_> = defs.into_iter().filter(|d| d.1 > 0).collect();
                        defs.sort();
                        for ((race, (order, spec)), _) in defs {
                            if races.get(&race).is_some_and(|(o, _, _)| *o > order) {
                                continue;
                            }
                            let compiled = Rc::new(Race::compile(spec.get()));
                            races.insert(race.clone(), (order, spec, compiled));
                            redefined.insert(race);
                        }
                        let mut dirty = FastSet::default();
                        // Entrants: the greatest order holds; a participant
                        // with something to show re-folds (its wave may move
                        // its start; its rows carry the listing).
                        entrants.sort();
                        for (key, (order, listing)) in entrants {
                            let p = Arc::make_mut(participant_at(&mut participants, &key));
                            if p.entrant.as_ref().is_some_and(|(o, _)| *o > order) {
                                continue;
                            }
                            p.entrant = Some((order, listing));
                            if races.get(&key.0).is_some_and(|(_, _, race)| p.shown(race)) {
                                p.dirty = Dirty::All;
                                dirty.insert(key);
                            }
                        }
                        let mut refused = Vec::new();
                        for (o, diff) in obs {
                            let Observation { race, participant, time_ms, what, origin } = o;
                            let item = (time_ms, what);
                            let key = (race, participant);
                            let p = Arc::make_mut(participant_at(&mut participants, &key));
                            let behind_ms = if diff > 0 { p.arrive(&item) } else { 0 };
                            let Some((_, _, compiled)) = races.get(&key.0) else {
                                // Judged once the race is defined, if there is room.
                                if diff > 0 && held >= MAX_HELD {
                                    refused.push(Refusal::of(&key, item, origin, Why::Undefined));
                                } else if diff > 0 {
                                    p.held.push(Held { item, behind_ms, origin });
                                    held += 1;
                                } else if let Some(i) = p.held.iter().position(|h| h.item == item) {
                                    p.held.remove(i);
                                    held -= 1;
                                }
                                if p.is_empty() && p.entrant.is_none() {
                                    participants.remove(&key);
                                }
                                continue;
                            };
                            let allowed_ms = compiled.allowed_lateness_ms;
                            if diff > 0 && p.too_late(&item, behind_ms, allowed_ms) {
                                refused.push(Refusal::of(&key, item, origin, Why::TooLate { behind_ms, allowed_ms }));
                                continue;
                            }
                            if p.last.as_ref().is_some_and(|l| item < l.0) {
                                late.inc();
                            }
                            if p.apply(item, diff) {
                                dirty.insert(key);
                            }
                        }
                        for race in &redefined {
                            let allowed_ms = races[race].2.allowed_lateness_ms;
                            // In key order, for the order of the refusals.
                            let mut keys: Vec<_> = participants.keys().filter(|k| k.0 == *race).cloned().collect();
                            keys.sort_unstable();
                            for key in keys {
                                let p = Arc::make_mut(participants.get_mut(&key).expect("listed above"));
                                held -= p.held.len();
                                for h in std::mem::take(&mut p.held) {
                                    if p.too_late(&h.item, h.behind_ms, allowed_ms) {
                                        let why = Why::TooLate { behind_ms: h.behind_ms, allowed_ms };
                                        refused.push(Refusal::of(&key, h.item, h.origin, why));
                                    } else {
                                        p.apply(h.item, 1);
                                    }
                                }
                                if p.shown(&races[race].2) {
                                    p.dirty = Dirty::All;
                                    dirty.insert(key);
                                }
                            }
                        }
                        let mut session = output.session(&cap);
                        for r in refused {
                            outcome(r.kind()).inc();
                            session.give((Tracked::Refused(r), t.clone(), 1));
                        }
                        for key in dirty {
                            let Some((_, _, race)) = races.get(&key.0) else {
                                continue; // kept until the race is defined
                            };
                            let p = Arc::make_mut(participants.get_mut(&key).expect("dirty ones exist"));
                            let was_late = matches!(&p.dirty, Dirty::From(k) if p.last.as_ref().is_some_and(|l| *k < l.0));
                            let before = p.emitted.as_ref().map_or(0, |e| e.0.rejected);
                            let (progress, splits) = p.refold(race, &key.1);
                            if progress.rejected > before {
                                rejected.inc_by(u64::from(progress.rejected - before));
                            }
                            p.compact(race.allowed_lateness_ms);
                            let (old_progress, old_splits) = match p.emitted.take() {
                                Some((p, s)) => (Some(p), s),
                                None => (None, Vec::new()),
                            };
                            // A split changes with its time, or with the
                            // listing that puts it in groups.
                            let old_listing = old_progress.as_ref().and_then(|o| o.listing.clone());
                            let new_listing = progress.listing.as_ref();
                            let old_listing = old_listing.as_ref();
                            let relisted = old_listing != new_listing;
                            let mut retracted = false;
                            if old_progress.as_ref() != Some(&progress) {
                                // The old progress goes out as it is (moved, not copied).
                                if let Some(o) = old_progress {
                                    session.give((Tracked::Progress(key.0.clone(), o), t.clone(), -1));
                                }
                                session.give((Tracked::Progress(key.0.clone(), progress.clone()), t.clone(), 1));
                            }
                            for i in 0..old_splits.len().max(splits.len()) {
                                let (o, n) = (old_splits.get(i).filter(|t| super::track::read(t).is_some()), splits.get(i).filter(|t| super::track::read(t).is_some()));
                                if o == n && !relisted {
                                    continue;
                                }
                                let split = i as u32 + 1;
                                if let Some(o) = o {
                                    retracted |= Some(o) != n;
                                    session.give((Tracked::Split(key.0.clone(), split, key.1.clone(), *o, old_listing.cloned()), t.clone(), -1));
                                }
                                if let Some(n) = n {
                                    session.give((Tracked::Split(key.0.clone(), split, key.1.clone(), *n, new_listing.cloned()), t.clone(), 1));
                                }
                            }
                            if was_late && retracted {
                                corrections.inc();
                            }
                            p.emitted = Some((progress, splits));
                        }
                    }
                    // Every batch before the frontier is applied.
                    let frontier = [obs_frontier, def_frontier]
                        .iter()
                        .filter_map(|f| f.frontier().first().cloned())
                        .min();
                    if let Some(upto) = frontier {
                        snapshot(upto, &races, &participants);
                    }
                }
            },
        )
        .as_collection()
}

#[cfg(test)]
mod tests;
