//! `race_standings`, first version: distance covered per participant, ranked
//! per race.
//!
//! Distance is the sum of great-circle segments between a participant's
//! points in time order. Points are in whole millimetres and 1e-7 degrees
//! inside the dataflow, so every sum is exact and the result does not depend
//! on arrival order, batching or worker count. Of two points with the same
//! time, the smaller (lat, lon) counts; the other is a duplicate.
//!
//! The sum is computed in two levels so a new point costs work proportional
//! to one minute of that participant's points, not to the whole race: points
//! are summarised per (race, participant, minute), and the summaries per
//! (race, participant).

use differential_dataflow::VecCollection;
use differential_dataflow::lattice::Lattice;
use serde::{Deserialize, Serialize};
use timely::progress::Timestamp;

use schemas::{GpsPoint, LatLon};

/// A GPS fix inside the dataflow: race, participant, time (ms), lat and lon (1e-7 degrees).
pub type Fix = (String, String, i64, i64, i64);

/// A GPS point as the job sees it.
pub fn fix(p: GpsPoint) -> Fix {
    (p.race, p.participant, p.time.0, to_e7(p.lat), to_e7(p.lon))
}

/// Converts degrees to the dataflow's fixed point (1e-7 degrees, about 1 cm).
pub fn to_e7(deg: f64) -> i64 {
    (deg * 1e7).round() as i64
}

fn position(lat_e7: i64, lon_e7: i64) -> LatLon {
    LatLon {
        lat: lat_e7 as f64 / 1e7,
        lon: lon_e7 as f64 / 1e7,
    }
}

/// Millimetres between two fixed-point positions.
pub fn segment_mm(a: (i64, i64), b: (i64, i64)) -> i64 {
    (position(a.0, a.1).distance_m(position(b.0, b.1)) * 1000.0).round() as i64
}

/// Width of the first level of summaries.
pub const BUCKET_MS: i64 = 60_000;

/// A run of consecutive points: the first and last (time, lat, lon) and the distance between.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct Run {
    first: (i64, i64, i64),
    last: (i64, i64, i64),
    distance_mm: i64,
}

impl Run {
    fn joined(mut self, next: &Run) -> Run {
        self.distance_mm +=
            segment_mm((self.last.1, self.last.2), (next.first.1, next.first.2)) + next.distance_mm;
        self.last = next.last;
        self
    }
}

/// One row of a race's standings, as the job computes it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Standing {
    /// 1 for the leader.
    pub rank: u32,
    /// Participant id.
    pub participant: String,
    /// Distance covered, millimetres.
    pub distance_mm: i64,
    /// Distance behind the leader, millimetres.
    pub gap_mm: i64,
    /// Time of the latest point, ms.
    pub last_seen_ms: i64,
}

/// Ranks `(participant, distance, last seen)`: most distance first, then participant id.
pub fn rank(mut progress: Vec<(String, i64, i64)>) -> Vec<Standing> {
    progress.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let lead = progress.first().map_or(0, |p| p.1);
    progress
        .into_iter()
        .enumerate()
        .map(|(i, (participant, distance_mm, last_seen_ms))| Standing {
            rank: i as u32 + 1,
            participant,
            distance_mm,
            gap_mm: lead - distance_mm,
            last_seen_ms,
        })
        .collect()
}

/// The standings of every defined race: `(race, row)`.
///
/// `gps` holds fixes; `races` the ids of defined races (points of races not
/// defined are held until the race is).
pub fn race_standings<'s, T>(
    gps: VecCollection<'s, T, Fix>,
    races: VecCollection<'s, T, String>,
) -> VecCollection<'s, T, (String, Standing)>
where
    T: Timestamp + Lattice + Ord,
{
    let minutes = gps
        .map(|(race, p, t, lat, lon)| ((race, p, t.div_euclid(BUCKET_MS)), (t, lat, lon)))
        .reduce_named("StandingsMinute", |_key, points, out| {
            // `points` is sorted by (time, lat, lon): keep the first of each time.
            let mut run: Option<Run> = None;
            for ((t, lat, lon), _) in points {
                let fix = (*t, *lat, *lon);
                run = Some(match run {
                    None => Run {
                        first: fix,
                        last: fix,
                        distance_mm: 0,
                    },
                    Some(r) if r.last.0 == *t => r,
                    Some(r) => {
                        let d = segment_mm((r.last.1, r.last.2), (*lat, *lon));
                        Run {
                            last: fix,
                            distance_mm: r.distance_mm + d,
                            ..r
                        }
                    }
                });
            }
            out.extend(run.map(|r| (r, 1)));
        });
    let progress = minutes
        .map(|((race, p, minute), run)| ((race, p), (minute, run)))
        .reduce_named("StandingsParticipant", |_key, runs, out| {
            let whole = runs
                .iter()
                .map(|((_, run), _)| run.clone())
                .reduce(|acc, next| acc.joined(&next));
            out.extend(whole.map(|r| ((r.distance_mm, r.last.0), 1)));
        })
        .map(|((race, p), (distance, last_seen))| (race, (p, distance, last_seen)));
    progress
        .semijoin(races.distinct())
        .reduce_named("StandingsRank", |_race, rows, out| {
            let progress = rows
                .iter()
                .map(|((p, d, l), _)| (p.clone(), *d, *l))
                .collect();
            out.extend(rank(progress).into_iter().map(|s| (s, 1)));
        })
}

/// Sequential reference: the standings of one race from its fixes, computed
/// the plain way (sort each participant's points, add the segments).
pub fn reference_standings(fixes: &[Fix]) -> Vec<Standing> {
    use std::collections::BTreeMap;
    let mut by_participant: BTreeMap<&str, BTreeMap<i64, (i64, i64)>> = BTreeMap::new();
    for (_, p, t, lat, lon) in fixes {
        let slot = by_participant
            .entry(p)
            .or_default()
            .entry(*t)
            .or_insert((*lat, *lon));
        *slot = (*slot).min((*lat, *lon));
    }
    let progress = by_participant
        .into_iter()
        .map(|(p, points)| {
            let pts: Vec<_> = points.into_iter().collect();
            let d = pts.windows(2).map(|w| segment_mm(w[0].1, w[1].1)).sum();
            (p.to_owned(), d, pts.last().expect("non-empty").0)
        })
        .collect();
    rank(progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_by_distance_then_id() {
        let r = rank(vec![
            ("b".into(), 5, 1),
            ("a".into(), 5, 2),
            ("c".into(), 9, 3),
        ]);
        let order: Vec<_> = r
            .iter()
            .map(|s| (s.rank, s.participant.as_str(), s.gap_mm))
            .collect();
        assert_eq!(order, vec![(1, "c", 0), (2, "a", 4), (3, "b", 4)]);
    }

    #[test]
    fn reference_ignores_duplicates_and_order() {
        let f = |t, lat| ("r".to_string(), "p".to_string(), t, lat, 0);
        let ordered = reference_standings(&[f(0, 0), f(1000, 10_000), f(2000, 20_000)]);
        let shuffled =
            reference_standings(&[f(2000, 20_000), f(0, 0), f(1000, 10_000), f(1000, 10_000)]);
        assert_eq!(ordered, shuffled);
        // 0.002 degrees of latitude: about 222.4 m.
        assert!(
            (ordered[0].distance_mm - 222_390).abs() < 100,
            "{}",
            ordered[0].distance_mm
        );
    }
}
