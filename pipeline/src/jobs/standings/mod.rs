//! `race_standings`: live standings and splits of course, mark and
//! timing-line races, from GPS fixes, timing crossings and race definitions.
//!
//! Three stages:
//! 1. **Track** (a timely operator, exchanged by participant): each
//!    participant's observations are kept sorted by time and folded by
//!    [`track::Fold`] into a [`Progress`] and a list of split times. A
//!    batch is applied only once the input frontier has passed its time, so
//!    the output at a time depends only on the input up to it. The fold is
//!    checkpointed every [`CHECKPOINT_EVERY`] observations: an in-order point
//!    costs one step, a late point re-folds from the checkpoint before it and
//!    retracts what it changes. Definitions are broadcast to every worker; a
//!    new definition re-folds its race.
//! 2. **Splits** (a differential reduce per race and split): the position at
//!    a split is the rank, by time, among the participants that passed it.
//! 3. **Rank** (a reduce per race): order by progress, then by when it was
//!    reached; retired (unseen for the race's `retire_after_s` while others
//!    are seen) and not-started participants go last.
//!
//! [`reference`] computes the same views the plain sequential way; tests
//! compare the two on shuffled, duplicated, delayed input.

pub mod geo;
mod job;
pub mod track;

use std::collections::{BTreeMap, BTreeSet, HashMap};
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

use schemas::{GpsPoint, RaceDefinition, Status, TimingCrossing};

use super::hash;
use super::stash::Stash;
use crate::snapshot::Checkpoint;

pub use geo::Race;
pub use job::{Standings, ViewRow};
pub use track::{Fold, Obs, Progress, fold_all};

/// An observation of a participant: a GPS fix or a timing crossing.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Observation {
    /// Race id.
    pub race: String,
    /// Participant id.
    pub participant: String,
    /// When, Unix ms.
    pub time_ms: i64,
    /// What was seen.
    pub what: Obs,
}

/// A race definition in the dataflow, decoded once where it is read and
/// shared from then on (workers of a process get the same `Arc`; another
/// process decodes the JSON it is sent once). Compared, ordered and hashed
/// by its JSON, which is how it travels and how a snapshot keeps it.
#[derive(Clone, Debug)]
pub struct Spec {
    json: Arc<str>,
    def: Arc<RaceDefinition>,
}

impl Spec {
    /// The definition, with its JSON.
    pub fn new(def: RaceDefinition) -> Self {
        let json = serde_json::to_string(&def).expect("definitions serialise");
        Self {
            json: json.into(),
            def: Arc::new(def),
        }
    }

    /// The definition.
    pub fn get(&self) -> &RaceDefinition {
        &self.def
    }
}

impl PartialEq for Spec {
    fn eq(&self, other: &Self) -> bool {
        self.json == other.json
    }
}

impl Eq for Spec {}

impl PartialOrd for Spec {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Spec {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.json.cmp(&other.json)
    }
}

impl std::hash::Hash for Spec {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.json.hash(state);
    }
}

impl Serialize for Spec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.json)
    }
}

impl<'de> Deserialize<'de> for Spec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let json = String::deserialize(d)?;
        let def = serde_json::from_str(&json).map_err(serde::de::Error::custom)?;
        Ok(Self {
            json: json.into(),
            def: Arc::new(def),
        })
    }
}

/// A race definition in the dataflow: race id, and (order, definition).
/// Of a race's definitions the one with the greatest order (its Kafka offset)
/// holds.
pub type Definition = (String, (i64, Spec));

/// A GPS point as the job sees it.
pub fn fix(p: GpsPoint) -> Observation {
    Observation {
        race: p.race,
        participant: p.participant,
        time_ms: p.time.0,
        what: Obs::Fix {
            lat_e7: to_e7(p.lat),
            lon_e7: to_e7(p.lon),
        },
    }
}

/// A timing crossing as the job sees it.
pub fn crossing(c: TimingCrossing) -> Observation {
    Observation {
        race: c.race,
        participant: c.participant,
        time_ms: c.time.0,
        what: Obs::Cross { line: c.line },
    }
}

/// A race definition as the job sees it, ordered by `order`.
pub fn definition(d: &RaceDefinition, order: i64) -> Definition {
    (d.id.clone(), (order, Spec::new(d.clone())))
}

/// Converts degrees to the dataflow's fixed point (1e-7 degrees, about 1 cm).
pub fn to_e7(deg: f64) -> i64 {
    (deg * 1e7).round() as i64
}

/// One row of a race's standings, as the job computes it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Standing {
    /// 1 for the leader.
    pub rank: u32,
    /// Participant id.
    pub participant: String,
    /// Not started, racing, finished or retired.
    pub status: Status,
    /// Distance along the course, mm (0 in timing-line races).
    pub progress_mm: i64,
    /// Distance behind the leader, mm, where progress is a distance.
    pub gap_mm: Option<i64>,
    /// Time behind the first participant through this one's latest split, ms.
    pub gap_ms: Option<i64>,
    /// Laps completed (lap races).
    pub laps: Option<u32>,
    /// Current leg (mark races).
    pub leg: Option<u32>,
    /// Speed over the last seconds, mm/s.
    pub speed_mmps: Option<i64>,
    /// Last lap time, ms.
    pub last_lap_ms: Option<i64>,
    /// Latest observation, ms.
    pub last_seen_ms: i64,
    /// Estimated finish, ms (course races).
    pub eta_ms: Option<i64>,
    /// Where the latest accepted GPS fix was, 1e-7 degrees.
    pub position_e7: Option<(i64, i64)>,
}

/// A participant's passage of a split, with the position at that moment.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SplitRow {
    /// Participant id.
    pub participant: String,
    /// Split index, from 1.
    pub split: u32,
    /// When it was passed, ms.
    pub time_ms: i64,
    /// 1 + the number of participants through the split before.
    pub position: u32,
}

/// The views `race_standings` maintains, keyed by race id.
pub struct RaceViews<'s, T: Timestamp + Lattice> {
    /// Standings rows.
    pub standings: VecCollection<'s, T, (String, Standing)>,
    /// Split rows.
    pub splits: VecCollection<'s, T, (String, SplitRow)>,
}

/// What the track stage emits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Tracked {
    Progress(String, Progress),
    /// Race, split, participant, time.
    Split(String, u32, String, i64),
}

/// What the rank stage reads per race.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum RankInput {
    /// Split index and the time of the first participant through it.
    Lead(u32, i64),
    Progress(Progress),
}

/// Observations between fold checkpoints.
pub const CHECKPOINT_EVERY: u64 = 64;
/// Most observations held per participant: beyond it the oldest are folded
/// into a base state and forgotten (a point older than the base is then
/// counted as too late and ignored).
pub const MAX_OBSERVATIONS: usize = 200_000;

/// The standings and splits of every defined race.
pub fn race_standings<'s, T>(
    observations: VecCollection<'s, T, Observation>,
    definitions: VecCollection<'s, T, Definition>,
) -> RaceViews<'s, T>
where
    T: Timestamp + Lattice + TotalOrder + Ord + Into<u64>,
{
    race_standings_durable(observations, definitions, Checkpoint::none())
}

/// [`race_standings`] whose track stage writes its state at snapshot points
/// through `checkpoint` and starts from what it restored (see
/// [`crate::snapshot`]).
pub fn race_standings_durable<'s, T>(
    observations: VecCollection<'s, T, Observation>,
    definitions: VecCollection<'s, T, Definition>,
    checkpoint: Checkpoint<TrackState>,
) -> RaceViews<'s, T>
where
    T: Timestamp + Lattice + TotalOrder + Ord + Into<u64>,
{
    let tracked = track(observations, definitions, checkpoint);
    let splits = tracked
        .clone()
        .flat_map(|t| match t {
            Tracked::Split(race, split, p, time) => Some(((race, split), (time, p))),
            Tracked::Progress(..) => None,
        })
        .reduce_named("SplitPositions", |(_race, split), passes, out| {
            for (i, ((time, p), _)) in passes.iter().enumerate() {
                out.push((
                    SplitRow {
                        participant: p.clone(),
                        split: *split,
                        time_ms: *time,
                        position: i as u32 + 1,
                    },
                    1,
                ));
            }
        })
        .map(|((race, _), row)| (race, row));
    let leads = splits
        .clone()
        .filter(|(_, row)| row.position == 1)
        .map(|(race, row)| (race, RankInput::Lead(row.split, row.time_ms)));
    let standings = tracked
        .flat_map(|t| match t {
            Tracked::Progress(race, p) => Some((race, RankInput::Progress(p))),
            Tracked::Split(..) => None,
        })
        .concat(leads)
        .reduce_named("Rank", |_race, inputs, out| {
            let mut leads = BTreeMap::new();
            let mut progress = Vec::new();
            for (input, _) in inputs {
                match input {
                    RankInput::Lead(split, time) => {
                        leads.insert(*split, *time);
                    }
                    RankInput::Progress(p) => progress.push(p.clone()),
                }
            }
            out.extend(rank(progress, &leads).into_iter().map(|s| (s, 1)));
        });
    RaceViews { standings, splits }
}

/// Which of a participant's observations the next fold must start from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Dirty {
    Clean,
    From((i64, Obs)),
    All,
}

/// One participant's state in the track operator. A snapshot leaves out
/// the checkpoints: a late point after a restore re-folds from the base.
#[derive(Serialize, Deserialize)]
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
        }
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
        let initial = |base: &Option<((i64, Obs), Fold)>| match base {
            Some((k, f)) => (f.clone(), Some(k.clone())),
            None => (Fold::new(race), None),
        };
        let (mut fold, after) = match std::mem::replace(&mut self.dirty, Dirty::Clean) {
            Dirty::Clean => match &self.last {
                Some((k, f)) => (f.clone(), Some(k.clone())),
                None => initial(&self.base),
            },
            Dirty::All => {
                self.checkpoints.clear();
                initial(&self.base)
            }
            Dirty::From(from) => match &self.last {
                Some((k, f)) if *k < from => (f.clone(), Some(k.clone())),
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
        let summary = fold.summary(race, id, &self.splits);
        self.last = last_key.map(|k| (k, fold));
        (summary, self.splits.clone())
    }

    /// Forgets the oldest observations beyond [`MAX_OBSERVATIONS`], keeping
    /// the fold state they lead to.
    fn compact(&mut self) {
        if self.observations.len() <= MAX_OBSERVATIONS {
            return;
        }
        let excess = self.observations.len() - MAX_OBSERVATIONS * 3 / 4;
        let base_n = self.base.as_ref().map_or(0, |b| b.1.n);
        let Some(key) = self
            .checkpoints
            .iter()
            .find(|(_, f)| f.n >= base_n + excess as u64)
            .map(|(k, _)| k.clone())
        else {
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
/// definitions (order and JSON) and the participants it owns.
#[derive(Default, Serialize, Deserialize)]
pub struct TrackState {
    races: BTreeMap<String, (i64, Spec)>,
    participants: BTreeMap<(String, String), Participant>,
}

/// [`TrackState`] borrowed from the operator, for writing.
#[derive(Serialize)]
struct TrackStateRef<'a> {
    races: BTreeMap<&'a String, (i64, &'a Spec)>,
    participants: &'a BTreeMap<(String, String), Participant>,
}

/// The track stage: folds each participant's observations, emits their
/// progress and splits as differential updates.
fn track<'s, T>(
    observations: VecCollection<'s, T, Observation>,
    definitions: VecCollection<'s, T, Definition>,
    mut checkpoint: Checkpoint<TrackState>,
) -> VecCollection<'s, T, Tracked>
where
    T: Timestamp + Lattice + TotalOrder + Ord + Into<u64>,
{
    let metrics = observability::metrics();
    let outcome = |o: &str| metrics.standings_points.with_label_values(&[o]);
    let (late, corrections, rejected, too_late) = (
        outcome("late"),
        outcome("correction"),
        outcome("rejected"),
        outcome("too_late"),
    );
    /// What the track operator reads.
    enum Input {
        Observation(Observation, isize),
        Definition(Definition, isize),
    }
    observations
        .inner
        .binary_frontier(
            definitions.inner.broadcast(),
            Exchange::new(|u: &(Observation, T, isize)| {
                hash(&(u.0.race.as_str(), u.0.participant.as_str()))
            }),
            Pipeline,
            "Track",
            move |initial, _info| {
                let mut stash: Stash<T, Input> = Stash::default();
                let mut races: HashMap<String, (i64, Spec, Rc<Race>)> = HashMap::new();
                let mut participants: BTreeMap<(String, String), Participant> = BTreeMap::new();
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
                let mut snapshot = move |upto: T, races: &HashMap<String, (i64, Spec, Rc<Race>)>, participants: &BTreeMap<(String, String), Participant>| {
                    checkpoint.at(upto.into(), || TrackStateRef {
                        races: races.iter().map(|(k, (o, j, _))| (k, (*o, j))).collect(),
                        participants,
                    });
                };
                move |(obs_in, obs_frontier), (def_in, def_frontier), output| {
                    if let Some(cap) = initial.take() {
                        let mut session = output.session(&cap);
                        let t = cap.time().clone();
                        for ((race, id), p) in &participants {
                            let Some((progress, splits)) = &p.emitted else { continue };
                            session.give((Tracked::Progress(race.clone(), progress.clone()), t.clone(), 1));
                            for (i, time) in splits.iter().enumerate() {
                                session.give((Tracked::Split(race.clone(), i as u32 + 1, id.clone(), *time), t.clone(), 1));
                            }
                        }
                    }
                    obs_in.for_each(|cap, data| {
                        if let Some(cap) = cap.retain_least(output.output_index()) {
                            stash.absorb(&cap, data.drain(..), Input::Observation);
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
                        let (mut obs, mut defs) = (Vec::new(), Vec::new());
                        for input in batch {
                            match input {
                                Input::Observation(o, r) => obs.push((o, r)),
                                Input::Definition(d, r) => defs.push((d, r)),
                            }
                        }
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
                        let mut dirty = BTreeSet::new();
                        for (o, diff) in obs {
                            let key = (o.race, o.participant);
                            let p = participants.entry(key.clone()).or_insert_with(Participant::new);
                            let item = (o.time_ms, o.what);
                            if p.base.as_ref().is_some_and(|b| item <= b.0) {
                                too_late.inc();
                                continue;
                            }
                            if p.last.as_ref().is_some_and(|l| item < l.0) {
                                late.inc();
                            }
                            let changed = if diff > 0 {
                                p.observations.insert(item.clone())
                            } else {
                                p.observations.remove(&item)
                            };
                            if changed {
                                p.touch(&item);
                                dirty.insert(key);
                            }
                        }
                        for race in &redefined {
                            let from = (race.clone(), String::new());
                            for (key, p) in participants.range_mut(from..) {
                                if key.0 != *race {
                                    break;
                                }
                                p.dirty = Dirty::All;
                                dirty.insert(key.clone());
                            }
                        }
                        let mut session = output.session(&cap);
                        for key in dirty {
                            let Some((_, _, race)) = races.get(&key.0) else {
                                continue; // kept until the race is defined
                            };
                            let p = participants.get_mut(&key).expect("dirty ones exist");
                            let was_late = matches!(&p.dirty, Dirty::From(k) if p.last.as_ref().is_some_and(|l| *k < l.0));
                            let before = p.emitted.as_ref().map_or(0, |e| e.0.rejected);
                            let (progress, splits) = p.refold(race, &key.1);
                            if progress.rejected > before {
                                rejected.inc_by(u64::from(progress.rejected - before));
                            }
                            p.compact();
                            let old = p.emitted.take();
                            let (old_progress, old_splits) = match &old {
                                Some((p, s)) => (Some(p), s.as_slice()),
                                None => (None, &[][..]),
                            };
                            let mut retracted = false;
                            if old_progress != Some(&progress) {
                                if let Some(o) = old_progress {
                                    session.give((Tracked::Progress(key.0.clone(), o.clone()), t.clone(), -1));
                                }
                                session.give((Tracked::Progress(key.0.clone(), progress.clone()), t.clone(), 1));
                            }
                            for i in 0..old_splits.len().max(splits.len()) {
                                let (o, n) = (old_splits.get(i), splits.get(i));
                                if o == n {
                                    continue;
                                }
                                let split = i as u32 + 1;
                                if let Some(o) = o {
                                    retracted = true;
                                    session.give((Tracked::Split(key.0.clone(), split, key.1.clone(), *o), t.clone(), -1));
                                }
                                if let Some(n) = n {
                                    session.give((Tracked::Split(key.0.clone(), split, key.1.clone(), *n), t.clone(), 1));
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

/// Ranks a race's participants; `leads` holds, per split, the time of the
/// first participant through it.
pub fn rank(mut progress: Vec<Progress>, leads: &BTreeMap<u32, i64>) -> Vec<Standing> {
    let clock = progress.iter().map(|p| p.last_seen_ms).max().unwrap_or(0);
    let status = |p: &Progress| match p.status {
        Status::Racing if clock - p.last_seen_ms > p.retire_after_ms => Status::Retired,
        s => s,
    };
    let class = |s: Status| match s {
        Status::Racing | Status::Finished => 0,
        Status::Retired => 1,
        Status::NotStarted => 2,
    };
    progress.sort_by(|a, b| {
        class(status(a))
            .cmp(&class(status(b)))
            .then(b.progress_mm.cmp(&a.progress_mm))
            .then(b.splits.cmp(&a.splits))
            .then(a.reached_ms.cmp(&b.reached_ms))
            .then(a.participant.cmp(&b.participant))
    });
    let lead_mm = progress.first().map_or(0, |p| p.progress_mm);
    progress
        .into_iter()
        .enumerate()
        .map(|(i, p)| Standing {
            rank: i as u32 + 1,
            status: status(&p),
            gap_mm: p.has_distance.then_some(lead_mm - p.progress_mm),
            gap_ms: p
                .last_split
                .and_then(|(split, t)| leads.get(&split).map(|lead| t - lead)),
            progress_mm: p.progress_mm,
            laps: p.laps,
            leg: p.leg,
            speed_mmps: p.speed_mmps,
            last_lap_ms: p.last_lap_ms,
            last_seen_ms: p.last_seen_ms,
            eta_ms: p.eta_ms,
            position_e7: p.position_e7,
            participant: p.participant,
        })
        .collect()
}

/// The views, computed the plain sequential way: per participant, sort the
/// observations and fold them; per split, sort the passes; per race, rank.
pub fn reference(
    observations: &[Observation],
    definitions: &[Definition],
) -> (
    BTreeMap<String, Vec<Standing>>,
    BTreeMap<String, Vec<SplitRow>>,
) {
    let mut defs: BTreeMap<&str, &(i64, Spec)> = BTreeMap::new();
    for (race, d) in definitions {
        if defs.get(race.as_str()).is_none_or(|old| old.0 <= d.0) {
            defs.insert(race, d);
        }
    }
    let mut by_participant: BTreeMap<(&str, &str), BTreeSet<(i64, Obs)>> = BTreeMap::new();
    for o in observations {
        by_participant
            .entry((&o.race, &o.participant))
            .or_default()
            .insert((o.time_ms, o.what.clone()));
    }
    let mut progress: BTreeMap<String, Vec<Progress>> = BTreeMap::new();
    let mut passes: BTreeMap<(String, u32), Vec<(i64, String)>> = BTreeMap::new();
    let compiled: BTreeMap<&str, Race> = defs
        .iter()
        .map(|(race, (_, spec))| (*race, Race::compile(spec.get())))
        .collect();
    for ((race, p), obs) in by_participant {
        let Some(compiled) = compiled.get(race) else {
            continue;
        };
        let (summary, splits) = fold_all(compiled, p, &obs);
        progress.entry(race.to_owned()).or_default().push(summary);
        for (i, t) in splits.into_iter().enumerate() {
            passes
                .entry((race.to_owned(), i as u32 + 1))
                .or_default()
                .push((t, p.to_owned()));
        }
    }
    let mut splits: BTreeMap<String, Vec<SplitRow>> = BTreeMap::new();
    let mut leads: BTreeMap<String, BTreeMap<u32, i64>> = BTreeMap::new();
    for ((race, split), mut list) in passes {
        list.sort();
        leads
            .entry(race.clone())
            .or_default()
            .insert(split, list[0].0);
        let rows = splits.entry(race).or_default();
        for (i, (t, p)) in list.into_iter().enumerate() {
            rows.push(SplitRow {
                participant: p,
                split,
                time_ms: t,
                position: i as u32 + 1,
            });
        }
    }
    let standings = progress
        .into_iter()
        .map(|(race, list)| {
            let ranked = rank(list, leads.get(&race).unwrap_or(&BTreeMap::new()));
            (race, ranked)
        })
        .collect();
    (standings, splits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::{RaceKind, RaceRules, Timestamp, TimingLine};

    #[test]
    fn compaction_keeps_the_fold() {
        let race = Race::compile(&RaceDefinition {
            id: "r".into(),
            name: "r".into(),
            start: Timestamp(1_780_000_000_000),
            kind: RaceKind::TimingLines {
                lines: vec![TimingLine {
                    id: "l".into(),
                    name: String::new(),
                    ends: None,
                }],
            },
            laps: 100_000,
            cutoff: None,
            participants: vec![],
            // Two reads in three are false: laps stay below the race's 100,000.
            rules: RaceRules {
                min_lap_s: Some(2.5),
                ..Default::default()
            },
        });
        let cross = |i: i64| {
            (
                1_780_000_000_000 + i * 1000,
                Obs::Cross { line: "l".into() },
            )
        };
        let total = MAX_OBSERVATIONS as i64 + 1_000;
        let mut p = Participant::new();
        for chunk in (0..total).collect::<Vec<_>>().chunks(10_000) {
            for &i in chunk {
                let item = cross(i);
                p.observations.insert(item.clone());
                p.touch(&item);
            }
            p.refold(&race, "p");
            p.compact();
        }
        assert!(p.base.is_some(), "compacted");
        assert!(p.observations.len() <= MAX_OBSERVATIONS);
        // One more in-order crossing: the same as folding everything plainly.
        let item = cross(total);
        p.observations.insert(item.clone());
        p.touch(&item);
        let (progress, splits) = p.refold(&race, "p");
        let all: Vec<_> = (0..=total).map(cross).collect();
        let (want, want_splits) = fold_all(&race, "p", &all);
        assert_eq!(progress, want);
        assert_eq!(splits, want_splits);
        assert_eq!(progress.laps, Some(total as u32 / 3));
        assert_eq!(progress.status, Status::Racing);
    }
}
