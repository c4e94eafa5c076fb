//! The rank stage of `race_standings`: a timely operator, exchanged by race,
//! that keeps each race's participants in a [`Ladder`] by the ranking key
//! and each split's passes in a ladder by time, and emits, once the
//! frontier has passed an epoch, only the rows that changed: the standings
//! of the participants whose progress changed and of the ones the race
//! clock retired or brought back, the places of those and of the ones they
//! passed, and the race's [`Leader`] when it moved. A point costs
//! O(log n + places moved), not a sort of the race, and a place passed is a
//! [`Place`] of a few bytes, not the passed participant's whole row.
//!
//! Its state is derived from the track stage's output, which a restore
//! re-emits whole at the initial time, so it needs no snapshot of its own.

use std::collections::{BTreeMap, BTreeSet};

use foldhash::HashMap;

use differential_dataflow::lattice::Lattice;
use differential_dataflow::{AsCollection, VecCollection};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::operator::Operator;
use timely::order::TotalOrder;
use timely::progress::Timestamp;

use super::ladder::Ladder;
use super::{
    Group, Leader, Listing, Place, Progress, RankKey, SplitRow, Tracked, ViewRow, deadline,
    rank_key, standing, status_at,
};
use crate::jobs::hash;
use crate::jobs::stash::Stash;

/// The rank stage: the view rows of every race, as differential updates.
pub(super) fn rank<'s, T>(
    tracked: VecCollection<'s, T, Tracked>,
) -> VecCollection<'s, T, (String, ViewRow)>
where
    T: Timestamp + Lattice + TotalOrder + Ord,
{
    tracked
        .inner
        .unary_frontier(
            Exchange::new(|u: &(Tracked, T, isize)| hash(&u.0.race())),
            "Rank",
            |_cap, _info| {
                let mut stash: Stash<T, (Tracked, isize)> = Stash::default();
                let mut races: HashMap<String, RaceRank> = HashMap::default();
                move |(input, frontier), output| {
                    input.for_each(|cap, data| {
                        if let Some(cap) = cap.retain_least(output.output_index()) {
                            stash.absorb(&cap, data.drain(..), |x, r| (x, r));
                        }
                    });
                    while let Some((cap, batch)) = stash.next_ready(&[frontier]) {
                        let t = cap.time().clone();
                        let mut by_race: BTreeMap<String, Vec<(Tracked, isize)>> = BTreeMap::new();
                        for (x, r) in batch {
                            // The race's id is copied once an epoch, not once an update.
                            match by_race.get_mut(x.race()) {
                                Some(updates) => updates.push((x, r)),
                                None => {
                                    by_race.insert(x.race().to_owned(), vec![(x, r)]);
                                }
                            }
                        }
                        let mut session = output.session(&cap);
                        for (race, updates) in by_race {
                            let state = races.entry(race.clone()).or_default();
                            state.apply(updates, |row, diff| {
                                session.give(((race.clone(), row), t.clone(), diff));
                            });
                            if state.is_empty() {
                                races.remove(&race);
                            }
                        }
                    }
                }
            },
        )
        .as_collection()
}

/// One split's passes, in order of time (then participant), overall and
/// within each gender and category.
#[derive(Default)]
struct SplitRank {
    times: HashMap<String, (i64, Listing)>,
    ladder: Ladder<(i64, String)>,
    groups: HashMap<Group, Ladder<(i64, String)>>,
    emitted: HashMap<String, SplitRow>,
}

impl SplitRank {
    /// `id`'s row: its time and positions, if it passed.
    fn row(&self, split: u32, id: &str) -> Option<SplitRow> {
        let (time_ms, listing) = self.times.get(id)?;
        let key = (*time_ms, id.to_owned());
        let (mut gender_position, mut category_position) = (None, None);
        for group in Group::of(listing) {
            let position = self.groups.get(&group).and_then(|l| l.rank(&key));
            match group {
                Group::Gender(_) => gender_position = position,
                Group::Category(_) => category_position = position,
            }
        }
        Some(SplitRow {
            participant: id.to_owned(),
            split,
            time_ms: *time_ms,
            position: self.ladder.rank(&key).expect("in the ladder"),
            gender_position,
            category_position,
        })
    }
}

/// What the rank stage holds of one participant, in its slot of the race
/// (so that a changed participant costs one lookup by id an epoch, and the
/// ladder, the deadlines and the epoch's work name it by a number).
struct Person {
    /// Its id.
    id: String,
    /// Its progress, as the ladder holds it.
    progress: Option<Progress>,
    /// Its entry in the ladder.
    key: Option<Entry>,
    /// Its standing, as emitted.
    emitted: Option<super::Standing>,
    /// Its rank, as emitted.
    place: Option<u32>,
    /// Its rank after this epoch's moves, once the ladder reported it.
    placed: Option<Option<u32>>,
}

impl Person {
    fn new(id: &str) -> Self {
        Person {
            id: id.to_owned(),
            progress: None,
            key: None,
            emitted: None,
            place: None,
            placed: None,
        }
    }

    fn is_gone(&self) -> bool {
        self.progress.is_none()
            && self.key.is_none()
            && self.emitted.is_none()
            && self.place.is_none()
    }
}

/// A participant's entry in its race's ladder: its ranking key, then its
/// slot (the key is unique already; the slot spares a lookup by id).
type Entry = (RankKey, u32);

/// A participant's slot in its race ([`RaceRank::people`]).
type Slot = u32;

/// One race in the rank stage.
#[derive(Default)]
struct RaceRank {
    /// Each participant's slot, by id.
    slots: HashMap<String, Slot>,
    /// Every participant with progress, or with a row still emitted, in
    /// its slot (`None`: free, and in `free`).
    people: Vec<Option<Person>>,
    free: Vec<Slot>,
    ladder: Ladder<Entry>,
    /// Racing participants by when the race clock retires them.
    deadlines: BTreeSet<(i64, Slot)>,
    /// How many participants were last seen at each time: the race clock is the greatest.
    seen: BTreeMap<i64, usize>,
    clock: i64,
    splits: BTreeMap<u32, SplitRank>,
    leader: Option<Leader>,
}

impl RaceRank {
    fn is_empty(&self) -> bool {
        self.slots.is_empty() && self.splits.is_empty() && self.leader.is_none()
    }

    /// The slot of participant `id`, given one if it has none.
    fn slot(&mut self, id: &str) -> Slot {
        if let Some(&slot) = self.slots.get(id) {
            return slot;
        }
        let person = Some(Person::new(id));
        let slot = match self.free.pop() {
            Some(slot) => {
                self.people[slot as usize] = person;
                slot
            }
            None => {
                self.people.push(person);
                (self.people.len() - 1) as Slot
            }
        };
        self.slots.insert(id.to_owned(), slot);
        slot
    }

    /// Applies one epoch's updates of this race; `give` gets every changed
    /// row (its old version retracted, its new one inserted).
    fn apply(&mut self, updates: Vec<(Tracked, isize)>, mut give: impl FnMut(ViewRow, isize)) {
        // Retractions first: a participant's old progress, then its new one
        // (split, not sorted: each update is moved once).
        let (insertions, retractions): (Vec<_>, Vec<_>) =
            updates.into_iter().partition(|(_, diff)| *diff > 0);
        // Each participant's progress after the epoch: `None` for gone,
        // absent for unchanged (a retraction is of the held progress). The
        // order does not matter: what follows goes by `dirty`, in order.
        let mut progress: HashMap<Slot, Option<Progress>> = HashMap::default();
        let mut passes: BTreeMap<u32, BTreeMap<String, Option<(i64, Listing)>>> = BTreeMap::new();
        for (t, diff) in retractions.into_iter().chain(insertions) {
            match t {
                Tracked::Progress(_, p) if diff > 0 => {
                    progress.insert(self.slot(&p.participant), Some(p));
                }
                Tracked::Progress(_, p) => {
                    // (A participant with no slot holds no progress.)
                    let Some(&slot) = self.slots.get(&p.participant) else {
                        continue;
                    };
                    let held = match progress.get(&slot) {
                        Some(now) => now.as_ref() == Some(&p),
                        None => {
                            self.people[slot as usize]
                                .as_ref()
                                .and_then(|x| x.progress.as_ref())
                                == Some(&p)
                        }
                    };
                    if held {
                        progress.insert(slot, None);
                    }
                }
                Tracked::Split(_, split, id, time, listing) => {
                    let old = self
                        .splits
                        .get(&split)
                        .and_then(|s| s.times.get(&id))
                        .cloned();
                    let now = passes.entry(split).or_default().entry(id).or_insert(old);
                    let pass = Some((time, listing));
                    if diff > 0 {
                        *now = pass;
                    } else if *now == pass {
                        *now = None;
                    }
                }
                // Split off before this stage.
                Tracked::Refused(_) => {}
            }
        }

        // Participants whose row may change (sorted and deduplicated below).
        let mut dirty: Vec<Slot> = Vec::with_capacity(progress.len());
        for (slot, new) in progress {
            let person = self.people[slot as usize]
                .as_mut()
                .expect("a participant with progress has a slot");
            if let Some(old) = person.progress.take() {
                forget(&mut self.seen, &mut self.deadlines, old, slot);
            }
            if let Some(new) = new {
                remember(&mut self.seen, &mut self.deadlines, &new, slot);
                person.progress = Some(new);
            }
            dirty.push(slot);
        }
        // The race clock moved: the racing ones whose deadline it crossed flip.
        let clock = self.seen.keys().next_back().copied().unwrap_or(0);
        if clock != self.clock {
            let (lo, hi) = (clock.min(self.clock), clock.max(self.clock));
            for &(_, slot) in self.deadlines.range((lo, 0)..(hi, 0)) {
                dirty.push(slot);
            }
            self.clock = clock;
        }

        // Splits first: a lead that moved changes the gaps of those through it.
        for (split, moved) in passes {
            let s = self.splits.entry(split).or_default();
            let lead = s.ladder.first().map(|k| k.0);
            let mut moves = Vec::with_capacity(moved.len());
            let mut group_moves: BTreeMap<Group, Vec<_>> = BTreeMap::new();
            for (id, new) in moved {
                let old = match &new {
                    Some(pass) => s.times.insert(id.clone(), pass.clone()),
                    None => s.times.remove(&id),
                };
                // Per group, the pass's old key and new key: one move.
                let mut mine: BTreeMap<Group, (Option<_>, Option<_>)> = BTreeMap::new();
                for (pass, out) in [(&old, true), (&new, false)] {
                    let Some((t, listing)) = pass else { continue };
                    for group in Group::of(listing) {
                        let m = mine.entry(group).or_default();
                        let side = if out { &mut m.0 } else { &mut m.1 };
                        *side = Some((*t, id.clone()));
                    }
                }
                for (group, m) in mine {
                    group_moves.entry(group).or_default().push(m);
                }
                let key = |pass: Option<(i64, Listing)>| pass.map(|(t, _)| (t, id.clone()));
                moves.push((key(old), key(new)));
            }
            let mut touched = BTreeSet::new();
            s.ladder.apply(moves, |k, _| {
                touched.insert(k.1.clone());
            });
            for (group, moves) in group_moves {
                let ladder = s.groups.entry(group.clone()).or_default();
                ladder.apply(moves, |k, _| {
                    touched.insert(k.1.clone());
                });
                if ladder.is_empty() {
                    s.groups.remove(&group);
                }
            }
            for id in touched {
                let row = s.row(split, &id);
                let old = match &row {
                    Some(r) => s.emitted.insert(id, r.clone()),
                    None => s.emitted.remove(&id),
                };
                emit(old, row, ViewRow::Split, &mut give);
            }
            if s.ladder.first().map(|k| k.0) != lead {
                let slots = &self.slots;
                dirty.extend(s.ladder.keys().filter_map(|k| slots.get(&k.1)));
            }
            if s.ladder.is_empty() {
                self.splits.remove(&split);
            }
        }

        // The standings: move the dirty ones; emit the rows whose content
        // changed, then the places that changed, theirs and those they passed.
        dirty.sort_unstable();
        dirty.dedup();
        let mut moves = Vec::new();
        let clock = self.clock;
        for &slot in &dirty {
            let Some(person) = self.people[slot as usize].as_mut() else {
                continue;
            };
            let new = person
                .progress
                .as_ref()
                .map(|p| (rank_key(p, status_at(p, clock)), slot));
            if person.key != new {
                moves.push((std::mem::replace(&mut person.key, new.clone()), new));
            }
        }
        // Every place the moves changed, as the ladder reports it: the
        // moved ones' and those they passed (a slot may come more than
        // once; its last report is its place after the batch).
        let mut placed: Vec<Slot> = Vec::new();
        let people = &mut self.people;
        self.ladder.apply(moves, |k, rank| {
            let person = people[k.1 as usize]
                .as_mut()
                .expect("a participant in the ladder has a slot");
            if person.placed.replace(rank).is_none() {
                placed.push(k.1);
            }
        });
        let splits = &self.splits;
        let lead = |split: u32| {
            splits
                .get(&split)
                .and_then(|s| s.ladder.first())
                .map(|k| k.0)
        };
        for &slot in &dirty {
            let Some(person) = self.people[slot as usize].as_mut() else {
                continue;
            };
            let row = person
                .progress
                .as_ref()
                .map(|p| standing(p, status_at(p, clock), lead));
            let old = std::mem::replace(&mut person.emitted, row.clone());
            emit(old, row, |s| ViewRow::Standing(Box::new(s)), &mut give);
        }
        // A place not reported did not change.
        for &slot in &placed {
            let person = self.people[slot as usize]
                .as_mut()
                .expect("a participant in the ladder has a slot");
            let rank = person.placed.take().expect("reported");
            let old = std::mem::replace(&mut person.place, rank);
            if old != rank {
                let place = |rank| Place {
                    participant: person.id.clone(),
                    rank,
                };
                emit(old.map(place), rank.map(place), ViewRow::Rank, &mut give);
            }
        }
        for slot in dirty.into_iter().chain(placed) {
            let Some(person) = self.people[slot as usize].as_ref() else {
                continue;
            };
            if person.is_gone() {
                let person = self.people[slot as usize].take().expect("in use");
                self.slots.remove(&person.id);
                self.free.push(slot);
            }
        }
        let leader = self.ladder.first().map(|k| {
            Leader::of(
                self.people[k.1 as usize]
                    .as_ref()
                    .and_then(|p| p.progress.as_ref())
                    .expect("a ranked participant has progress"),
            )
        });
        if leader != self.leader {
            let old = std::mem::replace(&mut self.leader, leader.clone());
            emit(old, leader, ViewRow::Leader, &mut give);
        }
    }
}

/// Adds a participant's progress to a race's clock (`seen`) and deadlines.
fn remember(
    seen: &mut BTreeMap<i64, usize>,
    deadlines: &mut BTreeSet<(i64, Slot)>,
    p: &Progress,
    slot: Slot,
) {
    *seen.entry(p.last_seen_ms).or_default() += 1;
    if let Some(d) = deadline(p) {
        deadlines.insert((d, slot));
    }
}

/// Takes a participant's progress out of a race's clock and deadlines.
fn forget(
    seen: &mut BTreeMap<i64, usize>,
    deadlines: &mut BTreeSet<(i64, Slot)>,
    p: Progress,
    slot: Slot,
) {
    if let Some(n) = seen.get_mut(&p.last_seen_ms) {
        *n -= 1;
        if *n == 0 {
            seen.remove(&p.last_seen_ms);
        }
    }
    if let Some(d) = deadline(&p) {
        deadlines.remove(&(d, slot));
    }
}

/// Gives the change from `old` to `new`, if they differ.
fn emit<R: PartialEq>(
    old: Option<R>,
    new: Option<R>,
    wrap: fn(R) -> ViewRow,
    give: &mut impl FnMut(ViewRow, isize),
) {
    if old == new {
        return;
    }
    if let Some(o) = old {
        give(wrap(o), -1);
    }
    if let Some(n) = new {
        give(wrap(n), 1);
    }
}
