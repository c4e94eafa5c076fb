//! `race_standings`: live standings and splits of course, mark,
//! timing-line and chip-timed (mats) races, from GPS fixes, timing
//! crossings and race definitions.
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
//! 2. **Rank** (a timely operator, exchanged by race): each race's
//!    participants in an ordered index by [`RankKey`], each split's passes in
//!    one by time; a changed participant moves past the ones it passes, and
//!    an epoch emits only the standings whose content changed, the places
//!    that changed, and the race's [`Leader`] when it moved.
//!
//! **The order** ([`RankKey`]): racing and finished participants first,
//! then retired ones (unseen for the race's `retire_after_s` while others
//! are seen), then those not started; within a class, further progress
//! first, then more splits, then whoever got there first; a tie after all
//! that goes to the smaller participant id. At a split, the earlier pass
//! first, a tie to the smaller participant id.
//!
//! **Rows that stay put.** A [`Standing`] holds the participant's own
//! progress and its gap in time at its latest split, which another's move
//! does not change; its rank is a [`Place`] of its own, so a pass changes
//! one standing and the places of those passed, each a few bytes. The
//! distance to the leader is the [`Leader`] record's progress minus the
//! row's, computed where it is shown, so a leader's step is one record, not
//! a row per participant.
//!
//! **The lateness horizon.** A point more than its race's
//! `allowed_lateness_s` (default 120) behind the participant's latest
//! observation of its kind, in the order they were read, is refused
//! ([`Refusal`], [`Why::TooLate`]): a dead letter, not judged. Points of a
//! race not defined yet are held until it is, at most [`MAX_HELD`] per
//! worker ([`Why::Undefined`] past that). What lies before the horizon is kept only as
//! a folded state, so a participant holds about the horizon's worth of
//! points (see `stage.rs`). A new definition re-folds its race from that
//! state: a change of course applies to the horizon, not to the points
//! already folded.
//!
//! [`reference`] computes the same views the plain sequential way, and
//! [`admit`] the horizon; tests compare the two on shuffled, duplicated,
//! delayed input.
//!
//! Files: `input.rs` what the job reads, `stage.rs` the track operator
//! (its tests in `stage/tests.rs`),
//! `track/` one participant's fold (its tests in `track/tests.rs`), `geo.rs` the course geometry,
//! `rank.rs` the rank operator, `ladder.rs` its ordered index, `job.rs` the
//! job as the runtime runs it; this file the rows, the order and the
//! reference.

pub mod geo;
mod input;
mod job;
pub mod ladder;
mod rank;
mod stage;
pub mod track;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use differential_dataflow::lattice::Lattice;
use differential_dataflow::{AsCollection, VecCollection};
use serde::{Deserialize, Serialize};
use timely::dataflow::Stream;
use timely::dataflow::operators::OkErr;
use timely::order::TotalOrder;
use timely::progress::Timestamp;

use schemas::Status;

use crate::snapshot::Checkpoint;

pub use geo::Race;
pub use input::{
    Definition, Entry, Listed, Listing, Observation, Spec, crossing, definition, entry, fix, to_e7,
};
pub use job::Standings;
use stage::track;
pub use stage::{Participant, Read, TrackState};
pub use track::{Fold, Obs, Progress, fold_all, fold_listed};

/// One row of a race's standings, as the job computes it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Standing {
    /// Participant id.
    pub participant: String,
    /// Not started, racing, finished or retired.
    pub status: Status,
    /// Distance along the course, mm (0 in timing-line races; in a
    /// chip-timed race the furthest mat, or a GPS-tracked runner's live
    /// distance past it).
    pub progress_mm: i64,
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
    /// What the race lists of the participant (name, gender, category).
    pub listing: Listing,
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
    /// The same among those of the participant's gender, if listed.
    pub gender_position: Option<u32>,
    /// The same within the participant's category, if listed.
    pub category_position: Option<u32>,
}

/// A group positions are also counted within: a gender or a category.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Group {
    /// Participants listed with this gender.
    Gender(String),
    /// Participants listed in this category.
    Category(String),
}

impl Group {
    /// The groups `listing` puts its participant in.
    pub fn of(listing: &Listing) -> impl Iterator<Item = Group> + '_ {
        let l = listing.as_deref();
        let gender = l.and_then(|l| l.gender.clone()).map(Group::Gender);
        let category = l.and_then(|l| l.category.clone()).map(Group::Category);
        gender.into_iter().chain(category)
    }
}

/// The leader of a race: who, and how far (where progress is a distance).
/// Another's gap in distance is this progress minus theirs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Leader {
    /// Participant id.
    pub participant: String,
    /// The leader's distance along the course, mm (course and mark races).
    pub progress_mm: Option<i64>,
}

impl Leader {
    fn of(p: &Progress) -> Leader {
        Leader {
            participant: p.participant.clone(),
            progress_mm: p.has_distance.then_some(p.progress_mm),
        }
    }
}

/// A participant's place in its race's order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Place {
    /// Participant id.
    pub participant: String,
    /// 1 for the leader.
    pub rank: u32,
}

/// A row of a race's view, keyed by race id: a standing, a place, a split,
/// or the race's leader.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ViewRow {
    /// A participant's standing: its own progress, which another's move
    /// does not change. Boxed: a standing is several times the size of the
    /// other rows (most rows are places), and every row is moved a few
    /// times between the rank stage and the changelog.
    Standing(Box<Standing>),
    /// A participant's rank, which another's move does.
    Rank(Place),
    /// A participant's passage of a split.
    Split(SplitRow),
    /// Who leads, and how far.
    Leader(Leader),
}

/// What the track stage emits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Tracked {
    Progress(String, Progress),
    /// Race, split, participant, time, and the participant's listing
    /// (for positions within its gender and category).
    Split(String, u32, String, i64, Listing),
    /// A point refused (split off before the rank stage).
    Refused(Refusal),
}

impl Tracked {
    fn race(&self) -> &str {
        match self {
            Tracked::Progress(race, _) | Tracked::Split(race, ..) => race,
            Tracked::Refused(r) => &r.observation.race,
        }
    }
}

/// A point the track stage did not judge: counted, and sent to the dead
/// letters with [`Refusal::reason`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Refusal {
    /// The point.
    pub observation: Observation,
    /// Why.
    pub why: Why,
}

/// Why a point was refused.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Why {
    /// It arrived more than its race's `allowed_lateness_s` behind the
    /// participant's latest observation of its kind (or behind what was
    /// already folded).
    TooLate {
        /// How far behind the latest of its kind it arrived, ms.
        behind_ms: i64,
        /// What its race allows, ms.
        allowed_ms: i64,
    },
    /// Its race is not defined, and the worker already holds [`MAX_HELD`]
    /// points of races not defined yet.
    Undefined,
}

impl Refusal {
    fn of(
        (race, participant): &(String, String),
        (time_ms, what): (i64, Obs),
        origin: Option<(i32, i64)>,
        why: Why,
    ) -> Self {
        Refusal {
            observation: Observation {
                race: race.clone(),
                participant: participant.clone(),
                time_ms,
                what,
                origin,
            },
            why,
        }
    }

    /// Its kind, for the dead letter's header and the metric:
    /// `too_late` or `unknown_race`.
    pub fn kind(&self) -> &'static str {
        match self.why {
            Why::TooLate { .. } => "too_late",
            Why::Undefined => "unknown_race",
        }
    }

    /// Why, for a dead letter: `too_late: …` or `unknown_race: …`.
    pub fn reason(&self) -> String {
        let kind = match self.observation.what {
            Obs::Fix { .. } => "GPS fix",
            Obs::Cross { .. } => "crossing",
        };
        match self.why {
            Why::TooLate {
                behind_ms,
                allowed_ms,
            } => format!(
                "too_late: {:.3} s behind the participant's latest {kind} read before it; race {} allows {:.3} s",
                behind_ms as f64 / 1000.0,
                self.observation.race,
                allowed_ms as f64 / 1000.0,
            ),
            Why::Undefined => format!(
                "unknown_race: race {} is not defined, and a worker holds at most {MAX_HELD} points of races not defined yet",
                self.observation.race,
            ),
        }
    }
}

/// Observations between fold checkpoints.
pub const CHECKPOINT_EVERY: u64 = 64;
/// Most observations held per participant, whatever the horizon: beyond it
/// the oldest are folded into the base state and forgotten as well (a point
/// behind the base is then too late).
pub const MAX_OBSERVATIONS: usize = 200_000;
/// Most points of races not defined (yet) one worker holds, to judge them
/// once their race is defined: past it such a point is refused
/// (`unknown_race`), so points for races nobody defines cannot grow pace
/// without bound. Which points are refused once a worker holds this many
/// depends on how the partitions' records interleave on it: a bound for
/// bad input, never reached by a defined race's points.
pub const MAX_HELD: usize = 100_000;

/// The standings, splits and leader of every defined race, from
/// observations and entrant records ([`Read`]) and definitions.
pub fn race_standings<'s, T>(
    reads: VecCollection<'s, T, Read>,
    definitions: VecCollection<'s, T, Definition>,
) -> VecCollection<'s, T, (String, ViewRow)>
where
    T: Timestamp + Lattice + TotalOrder + Ord + Into<u64>,
{
    race_standings_durable(reads, definitions, Checkpoint::none()).0
}

/// The points refused, each with its epoch.
pub type Refused<'s, T> = Stream<'s, T, Vec<(Refusal, T)>>;

/// [`race_standings`] whose track stage writes its state at snapshot points
/// through `checkpoint` and starts from what it restored (see
/// [`crate::snapshot`]); beside the views, the points refused.
// The split moves records, not results: a refusal is as large as the
// record it is, and rare.
#[allow(clippy::result_large_err)]
pub fn race_standings_durable<'s, T>(
    reads: VecCollection<'s, T, Read>,
    definitions: VecCollection<'s, T, Definition>,
    checkpoint: Checkpoint<TrackState>,
) -> (VecCollection<'s, T, (String, ViewRow)>, Refused<'s, T>)
where
    T: Timestamp + Lattice + TotalOrder + Ord + Into<u64>,
{
    let (tracked, refused) = track(reads, definitions, checkpoint)
        .inner
        .ok_err(|(x, t, diff)| match x {
            Tracked::Refused(r) => Err((r, t)),
            x => Ok((x, t, diff)),
        });
    (rank::rank(tracked.as_collection()), refused)
}

/// The ranking key of a participant with `status` (see the module's docs
/// for the order): smaller is ahead.
pub type RankKey = (u8, Reverse<i64>, Reverse<u32>, i64, String);

/// Where `p` stands in the order, with `status`.
fn rank_key(p: &Progress, status: Status) -> RankKey {
    let class = match status {
        Status::Racing | Status::Finished => 0,
        Status::Retired => 1,
        Status::NotStarted => 2,
        Status::DidNotStart => 3,
    };
    (
        class,
        Reverse(p.progress_mm),
        Reverse(p.splits),
        p.reached_ms,
        p.participant.clone(),
    )
}

/// `p`'s status when the race clock (its latest observation) is `clock`:
/// racing but unseen for longer than the race's `retire_after`, or past
/// the cutoff of their next mat, is retired; an entrant never read, past
/// the first cutoff, did not start.
fn status_at(p: &Progress, clock: i64) -> Status {
    match p.status {
        Status::Racing if deadline(p).is_some_and(|d| clock > d) => Status::Retired,
        Status::NotStarted if deadline(p).is_some_and(|d| clock > d) => Status::DidNotStart,
        s => s,
    }
}

/// When the race clock changes a participant's status: past this time.
fn deadline(p: &Progress) -> Option<i64> {
    match p.status {
        Status::Racing => {
            let unseen = p.last_seen_ms.saturating_add(p.retire_after_ms);
            Some(p.out_at_ms.map_or(unseen, |out| out.min(unseen)))
        }
        Status::NotStarted => p.out_at_ms,
        _ => None,
    }
}

/// `p`'s row; `lead` gives the time of the first participant through a split.
fn standing(p: &Progress, status: Status, lead: impl Fn(u32) -> Option<i64>) -> Standing {
    Standing {
        status,
        gap_ms: p
            .last_split
            .and_then(|(split, t)| lead(split).map(|lead| t - lead)),
        progress_mm: p.live_mm.unwrap_or(p.progress_mm),
        laps: p.laps,
        leg: p.leg,
        speed_mmps: p.speed_mmps,
        last_lap_ms: p.last_lap_ms,
        last_seen_ms: p.last_seen_ms,
        eta_ms: p.eta_ms,
        position_e7: p.position_e7,
        participant: p.participant.clone(),
        listing: p.listing.clone(),
    }
}

/// Ranks a race's participants the plain way, by sorting: the rows in rank
/// order (the first is rank 1); `leads` holds, per split, the time of the
/// first participant through it.
pub fn rank(
    progress: Vec<Progress>,
    leads: &BTreeMap<u32, i64>,
) -> (Vec<Standing>, Option<Leader>) {
    let clock = progress.iter().map(|p| p.last_seen_ms).max().unwrap_or(0);
    let mut keyed: Vec<(RankKey, Progress)> = progress
        .into_iter()
        .map(|p| (rank_key(&p, status_at(&p, clock)), p))
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    let leader = keyed.first().map(|(_, p)| Leader::of(p));
    let rows = keyed
        .iter()
        .map(|(_, p)| standing(p, status_at(p, clock), |s| leads.get(&s).copied()))
        .collect();
    (rows, leader)
}

/// What [`reference`] computes, by race id.
#[derive(Debug, Default)]
pub struct ReferenceViews {
    /// Each race's standings, in rank order (the first is rank 1).
    pub standings: BTreeMap<String, Vec<Standing>>,
    /// Each race's splits, by split then position.
    pub splits: BTreeMap<String, Vec<SplitRow>>,
    /// Each race's leader.
    pub leaders: BTreeMap<String, Leader>,
}

impl ReferenceViews {
    /// Every row, as the job's collection holds them.
    pub fn rows(self) -> BTreeSet<(String, ViewRow)> {
        let mut out = BTreeSet::new();
        for (race, list) in self.standings {
            for (i, s) in list.into_iter().enumerate() {
                let place = Place {
                    participant: s.participant.clone(),
                    rank: i as u32 + 1,
                };
                out.insert((race.clone(), ViewRow::Rank(place)));
                out.insert((race.clone(), ViewRow::Standing(Box::new(s))));
            }
        }
        for (race, list) in self.splits {
            out.extend(list.into_iter().map(|s| (race.clone(), ViewRow::Split(s))));
        }
        for (race, l) in self.leaders {
            out.insert((race, ViewRow::Leader(l)));
        }
        out
    }
}

/// The lateness horizon, the plain sequential way: `observations` in the
/// order they arrive, split into those judged and those too late (more
/// than their race's `allowed_lateness_s` behind the latest of their kind
/// for their participant before them). Points of races not defined are
/// kept (held, never shown; the job holds at most [`MAX_HELD`] of them per
/// worker, which the inputs of the reference tests never reach).
pub fn admit(
    observations: &[Observation],
    definitions: &[Definition],
) -> (Vec<Observation>, Vec<Refusal>) {
    let mut allowed: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for (race, (order, spec)) in definitions {
        let ms = spec.get().rules.allowed_lateness_ms();
        if allowed.get(race.as_str()).is_none_or(|old| old.0 <= *order) {
            allowed.insert(race, (*order, ms));
        }
    }
    let mut latest: BTreeMap<(&str, &str, usize), i64> = BTreeMap::new();
    let (mut admitted, mut refused) = (Vec::new(), Vec::new());
    for o in observations {
        let last = latest
            .entry((&o.race, &o.participant, o.what.source()))
            .or_insert(o.time_ms);
        let behind_ms = (*last - o.time_ms).max(0);
        *last = (*last).max(o.time_ms);
        match allowed.get(o.race.as_str()) {
            Some(&(_, allowed_ms)) if behind_ms > allowed_ms => refused.push(Refusal {
                observation: o.clone(),
                why: Why::TooLate {
                    behind_ms,
                    allowed_ms,
                },
            }),
            _ => admitted.push(o.clone()),
        }
    }
    (admitted, refused)
}

/// The views, computed the plain sequential way: per participant, sort the
/// observations and fold them; per split, sort the passes and count them,
/// overall and within each group; per race, rank.
pub fn reference(
    observations: &[Observation],
    entrants: &[Entry],
    definitions: &[Definition],
) -> ReferenceViews {
    let mut defs: BTreeMap<&str, &(i64, Spec)> = BTreeMap::new();
    for (race, d) in definitions {
        if defs.get(race.as_str()).is_none_or(|old| old.0 <= d.0) {
            defs.insert(race, d);
        }
    }
    let mut entered: BTreeMap<(&str, &str), &(i64, Listed)> = BTreeMap::new();
    for ((race, p), e) in entrants {
        let key = (race.as_str(), p.as_str());
        if entered.get(&key).is_none_or(|old| old.0 <= e.0) {
            entered.insert(key, e);
        }
    }
    let mut by_participant: BTreeMap<(&str, &str), BTreeSet<(i64, Obs)>> = BTreeMap::new();
    for o in observations {
        by_participant
            .entry((&o.race, &o.participant))
            .or_default()
            .insert((o.time_ms, o.what.clone()));
    }
    // A chip-timed race's entrants have rows before they are read.
    for (race, p) in entered.keys() {
        let mats = (defs.get(race))
            .is_some_and(|(_, spec)| matches!(spec.get().kind, schemas::RaceKind::Mats { .. }));
        if mats {
            by_participant.entry((race, p)).or_default();
        }
    }
    let mut progress: BTreeMap<String, Vec<Progress>> = BTreeMap::new();
    // Per (race, split): each pass's time, participant and listing.
    type Passes = Vec<(i64, String, Listing)>;
    let mut passes: BTreeMap<(String, u32), Passes> = BTreeMap::new();
    let compiled: BTreeMap<&str, Race> = defs
        .iter()
        .map(|(race, (_, spec))| (*race, Race::compile(spec.get())))
        .collect();
    for ((race, p), obs) in by_participant {
        let Some(compiled) = compiled.get(race) else {
            continue;
        };
        let listing = match entered.get(&(race, p)) {
            Some((_, l)) => Some(l.clone()),
            None => compiled.listing(p),
        };
        let (summary, splits) = fold_listed(compiled, p, &listing, &obs);
        progress.entry(race.to_owned()).or_default().push(summary);
        for (i, t) in splits.iter().enumerate() {
            let Some(t) = track::read(t) else { continue };
            passes
                .entry((race.to_owned(), i as u32 + 1))
                .or_default()
                .push((t, p.to_owned(), listing.clone()));
        }
    }
    let mut splits: BTreeMap<String, Vec<SplitRow>> = BTreeMap::new();
    let mut leads: BTreeMap<String, BTreeMap<u32, i64>> = BTreeMap::new();
    for ((race, split), mut list) in passes {
        list.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        leads
            .entry(race.clone())
            .or_default()
            .insert(split, list[0].0);
        let rows = splits.entry(race).or_default();
        let mut counted: BTreeMap<Group, u32> = BTreeMap::new();
        for (i, (t, p, listing)) in list.into_iter().enumerate() {
            let (mut gender_position, mut category_position) = (None, None);
            for group in Group::of(&listing) {
                let n = counted.entry(group.clone()).or_default();
                *n += 1;
                match group {
                    Group::Gender(_) => gender_position = Some(*n),
                    Group::Category(_) => category_position = Some(*n),
                }
            }
            rows.push(SplitRow {
                participant: p,
                split,
                time_ms: t,
                position: i as u32 + 1,
                gender_position,
                category_position,
            });
        }
    }
    let mut views = ReferenceViews {
        splits,
        ..Default::default()
    };
    for (race, list) in progress {
        let (rows, leader) = rank(list, leads.get(&race).unwrap_or(&BTreeMap::new()));
        views.standings.insert(race.clone(), rows);
        views.leaders.extend(leader.map(|l| (race, l)));
    }
    views
}
