//! One participant's race, folded from their observations in time order.
//!
//! [`Fold::step`] takes the next observation (a GPS fix or a timing-line
//! crossing) and moves the participant on: map-matched distance on a course,
//! legs of a mark race, laps over timing lines, chip-timing mats and GPS
//! between them (`mats.rs`). Splits are appended to a
//! vector kept beside the fold, so that a fold state is small and cheap to
//! checkpoint. [`Fold::summary`] says where the participant stands.
//!
//! The fold is the definition of the standings' semantics: the incremental
//! operator and the sequential reference both run it, over the same sorted,
//! de-duplicated observations.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use schemas::{Participant, Status};

use super::Listing;
use super::geo::{self, Geometry, MARK_ZONE_M, NOISE_M, Race, Xy, dist, dot, segment_crossing};

/// What was observed of a participant at one time.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Obs {
    /// A GPS fix, 1e-7 degrees. Of two fixes with the same time the smaller counts.
    Fix {
        /// Latitude, 1e-7 degrees.
        lat_e7: i64,
        /// Longitude, 1e-7 degrees.
        lon_e7: i64,
    },
    /// A crossing of the timing line with this id.
    Cross {
        /// Timing line id.
        line: String,
    },
}

impl Obs {
    /// Which kind of observation this is, as an index: 0 a GPS fix, 1 a
    /// crossing. Each kind comes from its own topic, so each has its own
    /// arrival order (a participant's records share one partition of it).
    pub fn source(&self) -> usize {
        match self {
            Obs::Fix { .. } => 0,
            Obs::Cross { .. } => 1,
        }
    }

    /// The least observation, for ranges by time.
    pub const LEAST: Obs = Obs::Fix {
        lat_e7: i64::MIN,
        lon_e7: i64::MIN,
    };
}

/// A split a participant passed without a read (a chip-timed race's missed
/// mat): held in the splits vector so that a split's index stays its
/// mat's, and never emitted ([`read`]).
pub const MISSED: i64 = i64::MIN;

/// A split's time, unless it was [`MISSED`].
pub fn read(t: &i64) -> Option<i64> {
    (*t != MISSED).then_some(*t)
}

/// Speed is measured over about this much recent track, ms.
const SPEED_WINDOW_MS: i64 = 10_000;
/// After this many rejected fixes in a row that agree with each other, the
/// fix they disagree with is taken to have been the outlier.
const REANCHOR_AFTER: u32 = 3;
/// How far past the start line, on the course side, a boat must be to have started, metres.
const START_CLEAR_M: f64 = 50.0;
/// Most fixes the speed window holds.
const SPEED_WINDOW_MAX: usize = 64;

/// Where a participant is in their race, after some observations.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Fold {
    /// Observations folded so far.
    pub n: u64,
    /// Splits appended so far (the length of the splits vector).
    pub splits: usize,
    /// Points rejected as impossible jumps, and crossings as false reads.
    pub rejected: u32,
    last_seen: Option<i64>,
    /// Time of the last fix looked at (accepted or not): same-time duplicates.
    last_fix_time: Option<i64>,
    /// The last accepted fix.
    last_fix: Option<(i64, Xy)>,
    /// Where the last accepted fix was, 1e-7 degrees.
    position_e7: Option<(i64, i64)>,
    /// The last rejected fix, and how many rejected fixes in a row agree with
    /// each other: enough of them mean the accepted one was the outlier.
    last_rejected: Option<(i64, Xy, u32)>,
    started: Option<i64>,
    finished: Option<i64>,
    window: VecDeque<(i64, Xy)>,
    kind: KindState,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum KindState {
    /// Matched distance along the unrolled course, and when it was matched.
    Course { d: f64, d_time: i64 },
    /// The next corner: 0 the start line, 1..=n the marks, n + 1 the finish.
    Marks { next: usize },
    /// Last accepted crossing per line, laps done, the last lap's time.
    Timing {
        last: Vec<Option<i64>>,
        laps: u32,
        last_lap_ms: Option<i64>,
    },
    /// The participant's own start (their first start-mat read), and
    /// their wave's start; how far along the route they are known to be
    /// (GPS fixes matched to it, and mats read), in the mats' metres, and
    /// when that was last matched.
    Mats {
        own_start: Option<i64>,
        wave_start: i64,
        live_m: f64,
        live_time: i64,
    },
}

/// A participant's standing before ranking (integers, so it orders and
/// compares exactly).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Progress {
    /// Participant id.
    pub participant: String,
    /// Not started, racing or finished (retired is decided per race).
    pub status: Status,
    /// Distance along the course, mm (0 where the race has no distance).
    pub progress_mm: i64,
    /// Splits passed.
    pub splits: u32,
    /// When the participant got where they are: finish time, or last point, ms.
    pub reached_ms: i64,
    /// Latest observation, ms.
    pub last_seen_ms: i64,
    /// Laps completed (lap races).
    pub laps: Option<u32>,
    /// Current leg (mark races).
    pub leg: Option<u32>,
    /// Speed over the last few seconds, mm/s.
    pub speed_mmps: Option<i64>,
    /// Last lap time, ms.
    pub last_lap_ms: Option<i64>,
    /// Estimated finish, ms (course races).
    pub eta_ms: Option<i64>,
    /// Where the latest accepted GPS fix was, 1e-7 degrees.
    pub position_e7: Option<(i64, i64)>,
    /// The latest split: index (from 1) and time.
    pub last_split: Option<(u32, i64)>,
    /// The race's rule: unseen this long while others are seen is retired, ms.
    pub retire_after_ms: i64,
    /// Whether progress is a distance (course and mark races).
    pub has_distance: bool,
    /// Observations rejected so far.
    pub rejected: u32,
    /// What the race lists of the participant (name, gender, category).
    pub listing: Listing,
    /// Chip-timed races: the cutoff of the runner's next mat, as a time
    /// (their start, or their wave's, plus the cutoff). Once the race's
    /// clock is past it with no further read, they are out of the race
    /// (retired: did not finish; never read at all: did not start); a
    /// later read that counts brings them back.
    pub out_at_ms: Option<i64>,
    /// Chip-timed races with a route: where a runner who also carries a
    /// GPS tracker is now, mm along the course, when that is further than
    /// their furthest mat ([`Progress::progress_mm`], which ranks them).
    pub live_mm: Option<i64>,
}

impl Fold {
    /// Before any observation of a participant listed as `listing`.
    pub fn new(race: &Race, listing: Option<&Participant>) -> Fold {
        let kind = match &race.geometry {
            Geometry::Course(_) => KindState::Course {
                d: 0.0,
                d_time: race.start_ms,
            },
            Geometry::Marks(_) => KindState::Marks { next: 0 },
            Geometry::Timing(t) => KindState::Timing {
                last: vec![None; t.ids.len()],
                laps: 0,
                last_lap_ms: None,
            },
            Geometry::Mats(m) => {
                let wave_start =
                    m.wave_start(race.start_ms, listing.and_then(|l| l.wave.as_deref()));
                KindState::Mats {
                    own_start: None,
                    wave_start,
                    live_m: 0.0,
                    live_time: wave_start,
                }
            }
        };
        Fold {
            n: 0,
            splits: 0,
            rejected: 0,
            last_seen: None,
            last_fix_time: None,
            last_fix: None,
            position_e7: None,
            last_rejected: None,
            started: None,
            finished: None,
            window: VecDeque::new(),
            kind,
        }
    }

    /// Folds the next observation (in `(time, obs)` order) in.
    pub fn step(&mut self, race: &Race, t: i64, obs: &Obs, splits: &mut Vec<i64>) {
        self.n += 1;
        self.last_seen = Some(self.last_seen.map_or(t, |s| s.max(t)));
        match obs {
            Obs::Cross { line } => match &race.geometry {
                Geometry::Timing(timing) => match timing.ids.iter().position(|id| id == line) {
                    Some(i) => self.crossing(race, i, t, splits),
                    None => self.rejected += 1,
                },
                Geometry::Mats(mats) => match mats.ids.iter().position(|id| id == line) {
                    Some(i) => self.mat(race, mats, i, t, splits),
                    None => self.rejected += 1,
                },
                // Crossings mean nothing to course and mark races.
                _ => self.rejected += 1,
            },
            Obs::Fix { lat_e7, lon_e7 } => {
                if self.last_fix_time == Some(t) {
                    return; // a second fix with the same time
                }
                self.last_fix_time = Some(t);
                let p = race.projection.xy_e7(*lat_e7, *lon_e7);
                let plausible = |(t0, p0): (i64, Xy)| {
                    dist(p0, p) <= race.max_speed_mps * (t - t0) as f64 / 1000.0 + NOISE_M
                };
                if self.last_fix.is_some_and(|f| !plausible(f)) {
                    let run = match self.last_rejected {
                        Some((t0, p0, run)) if plausible((t0, p0)) => run + 1,
                        _ => 1,
                    };
                    if run < REANCHOR_AFTER {
                        self.last_rejected = Some((t, p, run));
                        self.rejected += 1;
                        return;
                    }
                    // The accepted fix before them was the outlier: follow these.
                    self.last_fix = self.last_rejected.map(|(t0, p0, _)| (t0, p0));
                }
                self.last_rejected = None;
                self.fix(race, t, p, splits);
                self.last_fix = Some((t, p));
                self.position_e7 = Some((*lat_e7, *lon_e7));
                self.window.push_back((t, p));
                while self.window.len() > SPEED_WINDOW_MAX
                    || self
                        .window
                        .front()
                        .is_some_and(|f| t - f.0 > SPEED_WINDOW_MS)
                {
                    self.window.pop_front();
                }
            }
        }
    }

    fn split(&mut self, t: i64, splits: &mut Vec<i64>) {
        splits.truncate(self.splits);
        splits.push(t);
        self.splits = splits.len();
    }

    fn fix(&mut self, race: &Race, t: i64, p: Xy, splits: &mut Vec<i64>) {
        if t < race.start_ms && !matches!(race.geometry, Geometry::Timing(_)) {
            return;
        }
        if self.finished.is_some() {
            return;
        }
        if let Geometry::Mats(mats) = &race.geometry {
            return self.fix_between_mats(race, mats, t, p);
        }
        let prev = self.last_fix;
        match (&race.geometry, &mut self.kind) {
            (Geometry::Course(course), KindState::Course { d, d_time }) => {
                self.started.get_or_insert(race.start_ms);
                let (lo, hi) = course.window(*d, t - *d_time, race.max_speed_mps);
                let Some((s, _off)) = course.match_point(p, lo, hi) else {
                    return;
                };
                let (d0, t0) = (*d, *d_time);
                *d_time = t;
                if s <= d0 {
                    return;
                }
                let at =
                    |b: f64| t0 + ((b.min(s) - d0) / (s - d0) * (t - t0) as f64).round() as i64;
                // Lap `k` is done at k laps of distance; the last one a
                // line tolerance early (a watch stopped on the line).
                let reach = |k: u32| {
                    let b = f64::from(k) * course.length;
                    if k >= race.laps {
                        b - race.line_tolerance_m
                    } else {
                        b
                    }
                };
                let mut lap = (d0 / course.length).floor() as u32 + 1;
                *d = s;
                while lap <= race.laps && s >= reach(lap) {
                    let tc = at(reach(lap));
                    splits.truncate(self.splits);
                    splits.push(tc);
                    self.splits = splits.len();
                    if lap >= race.laps || race.cutoff_ms.is_some_and(|c| tc >= c) {
                        *d = f64::from(lap) * course.length;
                        self.finished = Some(tc);
                        break;
                    }
                    lap += 1;
                }
            }
            (Geometry::Marks(marks), KindState::Marks { next }) => {
                let side = |q: Xy, a: Xy, b: Xy| geo::cross(geo::sub(b, a), geo::sub(q, a));
                if *next == 0 {
                    // Started once clear of the start line on the course side
                    // (beside the line: at most a quarter of its length beyond
                    // either end). Being clear by START_CLEAR_M is what the
                    // marks' distance from their targets cannot fake.
                    let (a, b) = marks.start;
                    let line = geo::sub(b, a);
                    let len = dot(line, line).sqrt().max(1e-9);
                    let clear = |q: Xy| marks.course_side * side(q, a, b) / len;
                    let along = dot(geo::sub(p, a), line) / (len * len);
                    if clear(p) < START_CLEAR_M || !(-0.25..=1.25).contains(&along) {
                        return;
                    }
                    // The start: when it crossed the line, if after the gun.
                    let start = match prev {
                        Some((t0, p0)) if clear(p0) <= 0.0 => {
                            let u = -clear(p0) / (clear(p) - clear(p0));
                            (t0 + (u * (t - t0) as f64).round() as i64).max(race.start_ms)
                        }
                        _ => race.start_ms,
                    };
                    self.started = Some(start);
                    *next = 1;
                    return;
                }
                let Some((t0, p0)) = prev else { return };
                let crossed_at = |u: f64| t0 + (u * (t - t0) as f64).round() as i64;
                if *next <= marks.corners.len() {
                    let c = &marks.corners[*next - 1];
                    let sp = dot(geo::sub(p0, c.centre), c.axis);
                    let sq = dot(geo::sub(p, c.centre), c.axis);
                    let near = c
                        .points
                        .iter()
                        .map(|m| dist(*m, p))
                        .fold(f64::INFINITY, f64::min);
                    if sp < 0.0 && sq >= 0.0 && near <= MARK_ZONE_M {
                        let tc = crossed_at(-sp / (sq - sp));
                        *next += 1;
                        self.split(tc, splits);
                    }
                } else {
                    let (a, b) = marks.finish;
                    let len = dist(a, b).max(1e-9);
                    let dir = ((b.0 - a.0) / len, (b.1 - a.1) / len);
                    let ahead = |q: Xy| {
                        marks.finish_side * geo::cross(dir, geo::sub(q, a))
                            - marks.finish_tolerance_m
                    };
                    let (dp, dq) = (ahead(p0), ahead(p));
                    let along = dot(geo::sub(p, a), dir) / len;
                    if dp > 0.0 && dq <= 0.0 && (-0.5..=1.5).contains(&along) {
                        let tc = crossed_at(dp / (dp - dq));
                        *next += 1;
                        self.split(tc, splits);
                        self.finished = Some(tc);
                    }
                }
            }
            (Geometry::Timing(timing), KindState::Timing { .. }) => {
                if let Some((t0, p0)) = prev {
                    let mut derived: Vec<(i64, usize)> = timing
                        .ends
                        .iter()
                        .enumerate()
                        .filter_map(|(i, e)| {
                            let (a, b) = (*e)?;
                            let u = segment_crossing(p0, p, a, b)?;
                            Some((t0 + (u * (t - t0) as f64).round() as i64, i))
                        })
                        .collect();
                    derived.sort_unstable();
                    for (tc, i) in derived {
                        self.crossing(race, i, tc, splits);
                    }
                }
            }
            _ => unreachable!("the fold's state is made for the race's geometry"),
        }
    }

    fn crossing(&mut self, race: &Race, line: usize, t: i64, splits: &mut Vec<i64>) {
        if t < race.start_ms || self.finished.is_some() {
            return;
        }
        let KindState::Timing {
            last,
            laps,
            last_lap_ms,
        } = &mut self.kind
        else {
            return;
        };
        if self.started.is_none() {
            // The first crossing of the start line starts the race; it is not a lap.
            if line == 0 {
                self.started = Some(t);
                last[0] = Some(t);
            }
            return;
        }
        if last[line].is_some_and(|l| t - l < race.min_lap_ms.max(1)) {
            self.rejected += 1;
            return;
        }
        let previous = last[line].replace(t);
        let mut finished = false;
        if line == 0 {
            *laps += 1;
            *last_lap_ms = previous.map(|p| t - p);
            finished = *laps >= race.laps || race.cutoff_ms.is_some_and(|c| t >= c);
        }
        self.split(t, splits);
        if finished {
            self.finished = Some(t);
        }
    }

    /// Where the participant stands.
    pub fn summary(
        &self,
        race: &Race,
        participant: &str,
        listing: &Listing,
        splits: &[i64],
    ) -> Progress {
        let splits = &splits[..self.splits];
        let status = match (self.started, self.finished) {
            (_, Some(_)) => Status::Finished,
            (Some(_), None) => Status::Racing,
            (None, None) => Status::NotStarted,
        };
        let last_fix_t = self.last_fix.map(|f| f.0);
        let reached_ms = match status {
            Status::Finished => self.finished.unwrap_or(i64::MAX),
            Status::NotStarted => i64::MAX,
            _ => match &self.kind {
                KindState::Timing { .. } => splits.last().copied().or(self.started),
                KindState::Mats { .. } => splits.last().copied().or(Some(race.start_ms)),
                _ => last_fix_t,
            }
            .unwrap_or(i64::MAX),
        };
        let mut speed_mmps = match (self.window.front(), self.window.back()) {
            (Some(a), Some(b)) if b.0 - a.0 >= 2_000 && self.finished.is_none() => {
                Some((dist(a.1, b.1) * 1e6 / (b.0 - a.0) as f64).round() as i64)
            }
            _ => None,
        };
        let (mut progress_mm, mut laps, mut leg, mut last_lap_ms, mut eta_ms) =
            (0, None, None, None, None);
        let (mut out_at_ms, mut live_mm) = (None, None);
        match (&race.geometry, &self.kind) {
            (Geometry::Course(course), KindState::Course { d, d_time }) => {
                progress_mm = (d * 1000.0).round() as i64;
                if course.is_loop {
                    let done = (d / course.length).floor() as u32;
                    laps = Some(done.min(race.laps));
                    last_lap_ms = match splits {
                        [.., a, b] => Some(b - a),
                        [a] => Some(a - race.start_ms),
                        [] => None,
                    };
                }
                let total = course.length * race.laps as f64;
                let elapsed = (*d_time - race.start_ms) as f64 / 1000.0;
                if status == Status::Racing && race.cutoff_ms.is_none() && elapsed > 0.0 {
                    let average = d / elapsed;
                    if average > 0.1 {
                        eta_ms = Some(d_time + ((total - d) / average * 1000.0).round() as i64);
                    }
                }
            }
            (Geometry::Marks(marks), KindState::Marks { next }) => {
                let legs = marks.legs.len();
                progress_mm = match (*next, self.last_fix) {
                    (0, _) => 0,
                    (n, _) if n > legs => (marks.legs.iter().sum::<f64>() * 1000.0).round() as i64,
                    (n, Some((_, p))) => {
                        let done: f64 = marks.legs[..n - 1].iter().sum();
                        let len = marks.legs[n - 1];
                        let made = (len - dist(p, marks.targets[n - 1])).clamp(0.0, len - 0.001);
                        ((done + made) * 1000.0).round() as i64
                    }
                    (n, None) => (marks.legs[..n - 1].iter().sum::<f64>() * 1000.0).round() as i64,
                };
                leg = (*next > 0).then(|| (*next).min(legs) as u32);
            }
            (
                Geometry::Timing(_),
                KindState::Timing {
                    laps: l,
                    last_lap_ms: ll,
                    ..
                },
            ) => {
                laps = Some(*l);
                last_lap_ms = *ll;
            }
            (
                Geometry::Mats(mats),
                KindState::Mats {
                    own_start,
                    wave_start,
                    live_m,
                    ..
                },
            ) => {
                let at = splits.len();
                progress_mm = (mats.distance_m[at] * 1000.0).round() as i64;
                let live = (live_m * 1000.0).round() as i64;
                live_mm = (live > progress_mm && status == Status::Racing).then_some(live);
                if matches!(status, Status::Racing | Status::NotStarted) {
                    let from = match mats.net {
                        true => own_start.unwrap_or(*wave_start),
                        false => *wave_start,
                    };
                    out_at_ms = (mats.cutoff_ms[at + 1..].iter().flatten().min()).map(|c| from + c);
                }
                // The pace of the latest stretch: from the mat read before
                // the last one (or the start) to the last one. The projected
                // finish holds it to the finish; a reader projects where the
                // runner is between mats as the last mat's distance plus
                // this speed times the time since.
                let total = mats.distance_m[mats.distance_m.len() - 1];
                let mut reads = (splits.iter().enumerate().rev())
                    .filter_map(|(i, t)| Some((mats.distance_m[i + 1], read(t)?)))
                    .chain([(0.0, race.start_ms)]);
                if status == Status::Racing
                    && let (Some((d1, t1)), Some((d0, t0))) = (reads.next(), reads.next())
                    && t1 > t0
                    && d1 > d0
                {
                    let speed = (d1 - d0) / (t1 - t0) as f64; // m per ms
                    eta_ms = Some(t1 + ((total - d1) / speed).round() as i64);
                    speed_mmps = Some((speed * 1e6).round() as i64);
                }
            }
            _ => unreachable!("the fold's state is made for the race's geometry"),
        }
        Progress {
            participant: participant.to_owned(),
            status,
            progress_mm,
            splits: splits.len() as u32,
            reached_ms,
            // Never seen (an entrant of a chip-timed race not read yet): the gun.
            last_seen_ms: self.last_seen.unwrap_or(race.start_ms),
            laps,
            leg,
            speed_mmps,
            last_lap_ms,
            eta_ms,
            position_e7: self.position_e7,
            last_split: (splits.iter().enumerate().rev())
                .find_map(|(i, t)| Some((i as u32 + 1, read(t)?))),
            retire_after_ms: race.retire_after_ms,
            has_distance: !matches!(race.geometry, Geometry::Timing(_)),
            rejected: self.rejected,
            listing: listing.clone(),
            out_at_ms,
            live_mm,
        }
    }
}

/// Folds a participant's whole, sorted observation list: the plain way,
/// as the race's definition lists them.
pub fn fold_all<'a>(
    race: &Race,
    participant: &str,
    observations: impl IntoIterator<Item = &'a (i64, Obs)>,
) -> (Progress, Vec<i64>) {
    fold_listed(race, participant, &race.listing(participant), observations)
}

/// [`fold_all`] of a participant listed as `listing`.
pub fn fold_listed<'a>(
    race: &Race,
    participant: &str,
    listing: &Listing,
    observations: impl IntoIterator<Item = &'a (i64, Obs)>,
) -> (Progress, Vec<i64>) {
    let mut fold = Fold::new(race, listing.as_deref());
    let mut splits = Vec::new();
    for (t, obs) in observations {
        fold.step(race, *t, obs, &mut splits);
    }
    splits.truncate(fold.splits);
    (fold.summary(race, participant, listing, &splits), splits)
}

mod mats;
#[cfg(test)]
mod tests;
