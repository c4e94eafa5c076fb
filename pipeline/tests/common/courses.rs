//! Generated races for the standings tests: a local plane of metres around
//! a point in Stockholm, race definitions on it, runners walking waypoints
//! with noise and impossible jumps, and the standings point counters.

use pace_pipeline::jobs::standings::{Obs, Observation};
use rand::Rng;
use rand::rngs::StdRng;
use schemas::{LatLon, RaceDefinition, RaceKind, RaceRules, Timestamp};

/// When the generated races start, Unix ms.
pub const T0: i64 = 1_780_000_000_000;

pub fn origin() -> LatLon {
    LatLon {
        lat: 59.33,
        lon: 18.07,
    }
}

pub fn at(x: f64, y: f64) -> LatLon {
    origin().offset_m(x, y)
}

/// The corners of the 400 m square loop, metres from the origin.
pub const SQUARE: [(f64, f64); 4] = [(0.0, 0.0), (100.0, 0.0), (100.0, 100.0), (0.0, 100.0)];

/// Race `loop`: the square raced for 3 laps.
pub fn loop_race(rules: RaceRules) -> RaceDefinition {
    race(
        "loop",
        RaceKind::Course {
            polyline: SQUARE.iter().map(|p| at(p.0, p.1)).collect(),
            is_loop: true,
        },
        3,
        rules,
    )
}

pub fn race(id: &str, kind: RaceKind, laps: u32, rules: RaceRules) -> RaceDefinition {
    RaceDefinition {
        id: id.into(),
        name: id.into(),
        start: Timestamp(T0),
        kind,
        laps,
        cutoff: None,
        participants: vec![],
        rules,
    }
}

/// Points along `waypoints` (metres) at `speed`, every 1–3 s, with noise,
/// a few impossible jumps, some from before the gun.
pub fn walk(
    rng: &mut StdRng,
    race: &str,
    p: &str,
    waypoints: &[(f64, f64)],
    speed: f64,
) -> Vec<Observation> {
    let mut out = Vec::new();
    let mut t = T0 - 5_000;
    let (mut i, mut pos) = (0, waypoints[0]);
    while i + 1 < waypoints.len() {
        let dt = rng.random_range(1_000..3_000);
        t += dt;
        let mut step = if t < T0 {
            0.0
        } else {
            speed * dt as f64 / 1000.0
        };
        while step > 0.0 && i + 1 < waypoints.len() {
            let next = waypoints[i + 1];
            let d = (next.0 - pos.0).hypot(next.1 - pos.1);
            if d <= step {
                step -= d;
                pos = next;
                i += 1;
            } else {
                pos = (
                    pos.0 + (next.0 - pos.0) * step / d,
                    pos.1 + (next.1 - pos.1) * step / d,
                );
                step = 0.0;
            }
        }
        let mut x = pos.0 + rng.random_range(-4.0..4.0);
        let y = pos.1 + rng.random_range(-4.0..4.0);
        if rng.random_range(0..40) == 0 {
            x += 5_000.0; // an impossible jump
        }
        out.push(obs(race, p, t, fix_at(x, y)));
    }
    out
}

/// A GPS fix `x` metres east and `y` north of the origin.
pub fn fix_at(x: f64, y: f64) -> Obs {
    let ll = at(x, y);
    Obs::Fix {
        lat_e7: (ll.lat * 1e7).round() as i64,
        lon_e7: (ll.lon * 1e7).round() as i64,
    }
}

/// An observation of `participant` in `race` at `time_ms`.
pub fn obs(
    race: impl Into<String>,
    participant: impl Into<String>,
    time_ms: i64,
    what: Obs,
) -> Observation {
    Observation {
        race: race.into(),
        participant: participant.into(),
        time_ms,
        what,
        origin: None,
    }
}

pub fn points_outcome(outcome: &str) -> u64 {
    observability::metrics()
        .standings_points
        .with_label_values(&[outcome])
        .get()
}
