//! The built-in chip-timed road race, so that `pace run` shows the
//! commonest race there is beside the loop.
//!
//! A point-to-point 5 km through the city, timed by mats at the start, at
//! 2 km, at 4 km and at the finish, ranked by net time; two waves a minute
//! apart. Every runner is listed with a wave, a gender and an age group.
//! Mats now and then miss a runner; one runner in four also carries a GPS
//! tracker (a point every 5 s), so the page follows them between mats;
//! about one in fifty never starts. Each call of [`DemoRoadRace::tick`]
//! advances the race by one second. `pace run` joins each race
//! [`JOINED_AFTER_S`] after its gun (it sends that much at once), so that
//! the first splits are in when the page opens.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use schemas::{
    Clock, GpsPoint, LatLon, Participant, RaceDefinition, RaceKind, RaceRules, Timestamp,
    TimingCrossing, TimingMat, Wave,
};

use super::Course;

/// The mats: id, name, distance from the start (metres), cutoff after the
/// runner's start (seconds).
const MATS: [(&str, &str, f64, Option<f64>); 4] = [
    ("start", "Start", 0.0, None),
    ("2k", "2K", 2000.0, Some(1200.0)),
    ("4k", "4K", 4000.0, None),
    ("finish", "Finish", 5000.0, Some(3600.0)),
];
/// The second wave starts this long after the gun, seconds.
const WAVE_2_S: f64 = 60.0;
/// `pace run` starts each road race this long after its gun, seconds.
pub const JOINED_AFTER_S: u64 = 600;
/// A tracker sends a point this often, seconds.
const GPS_EVERY_S: u64 = 5;

struct RoadRunner {
    id: String,
    /// When they cross the start mat, ms after the gun (`None`: never).
    starts_ms: Option<i64>,
    speed_mps: f64,
    covered_m: f64,
    /// The next mat they reach (index into [`MATS`]).
    next_mat: usize,
    /// Whether they carry a GPS tracker.
    gps: bool,
}

/// A generated chip-timed road race in progress.
pub struct DemoRoadRace {
    /// Its definition, for `pace.races`.
    pub definition: RaceDefinition,
    route: Course,
    runners: Vec<RoadRunner>,
    rng: StdRng,
    gun: i64,
    ticks: u64,
}

/// What one second of the race sends.
#[derive(Default)]
pub struct RoadTick {
    /// Mat reads.
    pub reads: Vec<TimingCrossing>,
    /// GPS points of the runners who carry a tracker.
    pub points: Vec<GpsPoint>,
}

impl DemoRoadRace {
    /// A race `id` of `runners` starting at `start`; `seed` fixes everything random.
    pub fn new(id: &str, runners: usize, seed: u64, start: Timestamp) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        // East along the water from the centre, winding: about 5.1 km as
        // drawn, against the 5 km the mats are measured at.
        let origin = LatLon {
            lat: 59.3250,
            lon: 18.0500,
        };
        let route = Course::new(
            (0..=100)
                .map(|i| {
                    let x = f64::from(i) * 50.0;
                    origin.offset_m(x, 180.0 * (x / 700.0).sin())
                })
                .collect(),
        );
        let runners: Vec<RoadRunner> = (1..=runners)
            .map(|i| {
                let wave_ms = if i % 2 == 0 {
                    WAVE_2_S as i64 * 1000
                } else {
                    0
                };
                RoadRunner {
                    id: format!("r{i:04}"),
                    // The corral empties over the first 40 s of the wave.
                    starts_ms: (!rng.random_bool(0.02))
                        .then(|| wave_ms + rng.random_range(0..40_000)),
                    speed_mps: rng.random_range(2.4..5.0),
                    covered_m: 0.0,
                    next_mat: 0,
                    gps: rng.random_bool(0.25),
                }
            })
            .collect();
        let groups = ["18-39", "40-49", "50+"];
        let definition = RaceDefinition {
            id: id.to_owned(),
            name: "pace demo 5K (chip timing)".into(),
            start,
            kind: RaceKind::Mats {
                mats: (MATS.iter())
                    .map(|(id, name, d, cutoff)| TimingMat {
                        id: (*id).into(),
                        name: (*name).into(),
                        distance_m: *d,
                        cutoff_s: *cutoff,
                    })
                    .collect(),
                course: Some(route.points().to_vec()),
            },
            laps: 1,
            cutoff: None,
            participants: (runners.iter().enumerate())
                .map(|(i, r)| {
                    let gender = if i % 3 == 0 { "F" } else { "M" };
                    Participant {
                        id: r.id.clone(),
                        name: format!("Road Runner {}", i + 1),
                        wave: Some(if i % 2 == 0 { "1" } else { "2" }.into()),
                        gender: Some(gender.into()),
                        category: Some(format!("{gender}{}", groups[i % groups.len()])),
                    }
                })
                .collect(),
            rules: RaceRules {
                clock: Some(Clock::Net),
                waves: vec![
                    Wave {
                        id: "1".into(),
                        offset_s: 0.0,
                    },
                    Wave {
                        id: "2".into(),
                        offset_s: WAVE_2_S,
                    },
                ],
                max_speed_mps: Some(12.0),
                ..Default::default()
            },
        };
        Self {
            definition,
            route,
            runners,
            rng,
            gun: start.0,
            ticks: 0,
        }
    }

    /// Advances one second: the mat reads and GPS points of that second.
    pub fn tick(&mut self) -> RoadTick {
        self.ticks += 1;
        let now_ms = self.ticks as i64 * 1000;
        let finish = MATS[MATS.len() - 1].2;
        let scale = self.route.length_m() / finish;
        let mut out = RoadTick::default();
        for r in &mut self.runners {
            let Some(starts_ms) = r.starts_ms else {
                continue;
            };
            if now_ms < starts_ms || r.next_mat >= MATS.len() {
                continue;
            }
            // From the start mat (or the last second) to now.
            let (from_ms, from_m) = if r.next_mat == 0 {
                (starts_ms, 0.0)
            } else {
                (now_ms - 1000, r.covered_m)
            };
            let speed = r.speed_mps * self.rng.random_range(0.92..1.08);
            r.covered_m = (from_m + speed * (now_ms - from_ms) as f64 / 1000.0).min(finish);
            while let Some((mat, _, d, _)) = MATS.get(r.next_mat).filter(|m| m.2 <= r.covered_m) {
                r.next_mat += 1;
                // Mats miss a runner now and then, the finish seldom.
                let miss = if r.next_mat == MATS.len() { 0.01 } else { 0.04 };
                if self.rng.random_bool(miss) {
                    continue;
                }
                let at_ms = from_ms + ((d - from_m) / speed * 1000.0).round() as i64;
                out.reads.push(TimingCrossing {
                    race: self.definition.id.clone(),
                    participant: r.id.clone(),
                    line: (*mat).into(),
                    time: Timestamp(self.gun + at_ms.min(now_ms)),
                });
            }
            if r.gps && self.ticks.is_multiple_of(GPS_EVERY_S) && r.covered_m < finish {
                let p = (self.route.at(r.covered_m * scale)).offset_m(
                    self.rng.random_range(-4.0..4.0),
                    self.rng.random_range(-4.0..4.0),
                );
                let time = Timestamp(self.gun + now_ms);
                out.points
                    .push(super::fix(&self.definition.id, &r.id, time, p));
            }
        }
        out
    }

    /// Whether every runner has finished, or will never start; and the
    /// last of them has had time to be judged did-not-start.
    pub fn finished(&self) -> bool {
        let cutoff_ms = (MATS[1].3.unwrap_or(0.0) + WAVE_2_S) as i64 * 1000;
        self.runners
            .iter()
            .all(|r| r.starts_ms.is_none() || r.next_mat >= MATS.len())
            && self.ticks as i64 * 1000 > cutoff_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::Validate;

    #[test]
    fn the_road_race_is_valid_and_read_at_its_mats() {
        let mut race = DemoRoadRace::new("city-5k-1", 200, 3, Timestamp(1_780_000_000_000));
        race.definition.validate().unwrap();
        let (mut reads, mut points, mut ticks) = (Vec::new(), Vec::new(), 0u64);
        while !race.finished() {
            let t = race.tick();
            reads.extend(t.reads);
            points.extend(t.points);
            ticks += 1;
        }
        for r in &reads {
            r.validate().unwrap();
        }
        for p in &points {
            p.validate().unwrap();
        }
        // 5 km at 2.4..5.0 m/s, after the second wave's minute: about
        // 17 to 36 minutes.
        assert!((1_000..2_300).contains(&ticks), "{ticks}");
        let at = |mat: &str| reads.iter().filter(|r| r.line == mat).count();
        // About 196 runners start; mats miss a few of them.
        assert!((175..200).contains(&at("start")), "{}", at("start"));
        assert!((180..200).contains(&at("finish")), "{}", at("finish"));
        assert!(at("2k") < at("finish"), "the 2K mat misses more");
        // Reads come in time order per runner, after their wave.
        let r = &race.definition.participants[1];
        let theirs: Vec<i64> = (reads.iter())
            .filter(|c| c.participant == r.id)
            .map(|c| c.time.0)
            .collect();
        assert!(theirs.windows(2).all(|w| w[0] < w[1]), "{theirs:?}");
        assert!(theirs[0] >= 1_780_000_000_000 + 60_000, "wave 2");
        // A quarter carry GPS: every 5 s while they run.
        let tracked: std::collections::BTreeSet<&str> =
            points.iter().map(|p| p.participant.as_str()).collect();
        assert!((30..70).contains(&tracked.len()), "{}", tracked.len());
    }
}
