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
//!
//! Files: `input.rs` what the job reads, `stage.rs` the track operator,
//! `track.rs` one participant's fold, `geo.rs` the course geometry,
//! `job.rs` the job as the runtime runs it; this file the splits and rank
//! stages and the reference.

pub mod geo;
mod input;
mod job;
mod stage;
pub mod track;

use std::collections::{BTreeMap, BTreeSet};

use differential_dataflow::VecCollection;
use differential_dataflow::lattice::Lattice;
use serde::{Deserialize, Serialize};
use timely::order::TotalOrder;
use timely::progress::Timestamp;

use schemas::Status;

use crate::snapshot::Checkpoint;

pub use geo::Race;
pub use input::{Definition, Observation, Spec, crossing, definition, fix, to_e7};
pub use job::{Standings, ViewRow};
use stage::track;
pub use stage::{Participant, TrackState};
pub use track::{Fold, Obs, Progress, fold_all};

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
