//! Tests of one participant's fold: laps over timing lines, GPS-derived
//! crossings and cutoffs, and chip-timed races (missed mats, net and gun
//! time with waves, cutoffs, the projected finish).

use super::*;
use schemas::{LatLon, RaceDefinition, RaceKind, RaceRules, Timestamp, TimingLine};

const T0: i64 = 1_780_000_000_000;

fn fix(east_m: f64, north_m: f64) -> Obs {
    let p = LatLon {
        lat: 59.0,
        lon: 18.0,
    }
    .offset_m(east_m, north_m);
    Obs::Fix {
        lat_e7: (p.lat * 1e7).round() as i64,
        lon_e7: (p.lon * 1e7).round() as i64,
    }
}

/// A line across x = 100 m (north–south), with GPS geometry.
fn timing(cutoff: Option<i64>) -> Race {
    let o = LatLon {
        lat: 59.0,
        lon: 18.0,
    };
    Race::compile(&RaceDefinition {
        id: "t".into(),
        name: "t".into(),
        start: Timestamp(T0),
        kind: RaceKind::TimingLines {
            lines: vec![TimingLine {
                id: "sf".into(),
                name: String::new(),
                ends: Some([o.offset_m(100.0, -20.0), o.offset_m(100.0, 20.0)]),
            }],
        },
        laps: 10,
        cutoff: cutoff.map(Timestamp),
        participants: vec![],
        rules: RaceRules {
            min_lap_s: Some(30.0),
            ..Default::default()
        },
    })
}

#[test]
fn gps_crossings_count_laps_and_chip_duplicates_are_false_reads() {
    let race = timing(None);
    let mut obs: Vec<(i64, Obs)> = Vec::new();
    // Round a loop every 60 s, across the line eastwards and back
    // around it: a start crossing, then laps.
    for k in 0..4 {
        let t = T0 + k * 60_000;
        obs.push((t + 1_000, fix(90.0, 0.0)));
        obs.push((t + 3_000, fix(110.0, 0.0))); // crosses at t + 2 s
        obs.push((t + 20_000, fix(300.0, 0.0)));
        obs.push((t + 35_000, fix(300.0, 100.0)));
        obs.push((t + 50_000, fix(-50.0, 100.0)));
        obs.push((t + 58_000, fix(90.0, 0.0)));
    }
    // A chip read of the first lap's crossing. It is observed (62.4 s)
    // before the fix that shows the GPS crossing (63 s, crossed at 62 s),
    // so it counts and the GPS-derived one is the duplicate.
    obs.push((T0 + 62_400, Obs::Cross { line: "sf".into() }));
    obs.sort();
    let (p, splits) = fold_all(&race, "p", &obs);
    // Start at T0 + 2 s, laps at +62.4 (chip), +122, +182 s (GPS).
    assert_eq!(splits, [T0 + 62_400, T0 + 122_000, T0 + 182_000]);
    assert_eq!(
        (p.laps, p.last_lap_ms, p.status),
        (Some(3), Some(60_000), Status::Racing)
    );
    assert_eq!(p.rejected, 1);
}

#[test]
fn after_the_cutoff_the_next_crossing_finishes() {
    let race = timing(Some(T0 + 100_000));
    let cross = |s: i64| (T0 + s * 1000, Obs::Cross { line: "sf".into() });
    let obs = [cross(0), cross(60), cross(120), cross(180)];
    let (p, splits) = fold_all(&race, "p", &obs);
    assert_eq!(
        splits.len(),
        2,
        "the lap ending after the cutoff is the last"
    );
    assert_eq!((p.status, p.laps), (Status::Finished, Some(2)));
}

/// A marathon's mats (start, 5K, 10K, finish), waves `w1` at the gun
/// and `w2` two minutes after; `b` runs in `w2`.
fn marathon(clock: schemas::Clock, cutoff_10k_s: Option<f64>) -> Race {
    marathon_on(clock, cutoff_10k_s, None)
}

/// [`marathon`] on a route, when given.
fn marathon_on(
    clock: schemas::Clock,
    cutoff_10k_s: Option<f64>,
    course: Option<Vec<LatLon>>,
) -> Race {
    let mat = |id: &str, d: f64, cutoff_s| schemas::TimingMat {
        id: id.into(),
        name: id.into(),
        distance_m: d,
        cutoff_s,
    };
    Race::compile(&RaceDefinition {
        id: "m".into(),
        name: "m".into(),
        start: Timestamp(T0),
        kind: RaceKind::Mats {
            mats: vec![
                mat("start", 0.0, None),
                mat("5k", 5000.0, None),
                mat("10k", 10_000.0, cutoff_10k_s),
                mat("finish", 42_195.0, None),
            ],
            course,
        },
        laps: 1,
        cutoff: None,
        participants: vec![schemas::Participant {
            id: "b".into(),
            name: String::new(),
            wave: Some("w2".into()),
            ..Default::default()
        }],
        rules: RaceRules {
            clock: Some(clock),
            waves: vec![
                schemas::Wave {
                    id: "w1".into(),
                    offset_s: 0.0,
                },
                schemas::Wave {
                    id: "w2".into(),
                    offset_s: 120.0,
                },
            ],
            ..Default::default()
        },
    })
}

fn read(mat: &str, s: i64) -> (i64, Obs) {
    (T0 + s * 1000, Obs::Cross { line: mat.into() })
}

#[test]
fn a_missed_mat_is_missing_and_later_mats_count() {
    let race = marathon(schemas::Clock::Net, None);
    let obs = [read("start", 10), read("10k", 3010), read("finish", 12_010)];
    let (p, splits) = fold_all(&race, "a", &obs);
    assert_eq!(splits, vec![MISSED, T0 + 3_000_000, T0 + 12_000_000]);
    assert_eq!(p.status, Status::Finished);
    assert_eq!(p.progress_mm, 42_195_000);
    assert_eq!(p.reached_ms, T0 + 12_000_000, "the gun plus the net time");
    assert_eq!(p.last_split, Some((3, T0 + 12_000_000)));
    // Before the finish: at 10K, with the 5K missing.
    let (p, _) = fold_all(&race, "a", &obs[..2]);
    assert_eq!(
        (p.status, p.progress_mm, p.splits),
        (Status::Racing, 10_000_000, 2)
    );
}

#[test]
fn net_time_runs_from_the_own_start_and_gun_time_from_the_wave() {
    // `b` (wave w2, 120 s) crosses the start mat at 130 s and 5K at 1630 s.
    let obs = [read("start", 130), read("5k", 1630)];
    let (net, splits) = fold_all(&marathon(schemas::Clock::Net, None), "b", &obs);
    assert_eq!(splits, vec![T0 + 1_500_000]);
    assert_eq!(net.reached_ms, T0 + 1_500_000);
    let (_, splits) = fold_all(&marathon(schemas::Clock::Gun, None), "b", &obs);
    assert_eq!(splits, vec![T0 + 1_510_000], "from the wave's start");
    // The start mat missed them: net time runs from their wave's start.
    let (_, splits) = fold_all(&marathon(schemas::Clock::Net, None), "b", &obs[1..]);
    assert_eq!(splits, vec![T0 + 1_510_000]);
}

#[test]
fn reads_again_behind_or_past_a_cutoff_do_not_count() {
    let race = marathon(schemas::Clock::Net, Some(2_400.0));
    let obs = [
        read("start", 0),
        read("5k", 1500),
        read("5k", 1502),    // read twice
        read("start", 1600), // a start mat behind them
        read("10k", 3000),   // past the 10K cutoff (2400 s)
        read("finish", 13_000),
    ];
    let (p, splits) = fold_all(&race, "a", &obs);
    assert_eq!(splits, vec![T0 + 1_500_000, MISSED, T0 + 13_000_000]);
    assert_eq!(p.rejected, 1, "the read past the cutoff");
    assert_eq!(p.status, Status::Finished);
}

#[test]
fn a_runner_past_their_next_cutoff_is_out_until_a_read_counts() {
    use crate::jobs::standings::status_at;
    let race = marathon(schemas::Clock::Net, Some(2_400.0));
    // Started 60 s after the gun: out once the clock passes 60 + 2400 s
    // without a 10K read.
    let (p, _) = fold_all(&race, "a", &[read("start", 60), read("5k", 1500)]);
    assert_eq!(p.out_at_ms, Some(T0 + 2_460_000));
    assert_eq!(status_at(&p, T0 + 2_460_000), Status::Racing);
    assert_eq!(status_at(&p, T0 + 2_460_001), Status::Retired);
    // Past the 10K: no cutoff ahead; finished: none at all.
    let (p, _) = fold_all(
        &race,
        "a",
        &[read("start", 60), read("5k", 1500), read("10k", 2400)],
    );
    assert_eq!(p.out_at_ms, None);
    assert_eq!(status_at(&p, T0 + 9_000_000), Status::Racing);
    // A read past the cutoff does not count, but the finish does: a mat
    // is authoritative where it is.
    let (p, _) = fold_all(
        &race,
        "a",
        &[read("start", 0), read("5k", 1500), read("finish", 13_000)],
    );
    assert_eq!((p.status, p.out_at_ms), (Status::Finished, None));
}

#[test]
fn the_projected_finish_holds_the_latest_pace() {
    let race = marathon(schemas::Clock::Net, None);
    let (p, _) = fold_all(&race, "a", &[read("start", 0), read("5k", 1500)]);
    // 1500 s for 5 km: 42.195 km at that pace is 12658.5 s.
    assert_eq!(p.eta_ms, Some(T0 + 12_658_500));
    assert_eq!(p.speed_mmps, Some(3333), "5 km in 1500 s, mm/s");
    // Slower from 5K to 10K (1600 s): the rest at that pace.
    let (p, _) = fold_all(
        &race,
        "a",
        &[read("start", 0), read("5k", 1500), read("10k", 3100)],
    );
    assert_eq!(p.eta_ms, Some(T0 + 3_100_000 + 10_302_400));
    assert_eq!(p.speed_mmps, Some(3125));
    let (p, _) = fold_all(&race, "a", &[read("start", 0)]);
    assert_eq!(
        (p.status, p.eta_ms, p.progress_mm),
        (Status::Racing, None, 0)
    );
    let (p, _) = fold_all(&race, "a", &[]);
    assert_eq!(p.status, Status::NotStarted);
}

/// The marathon on a route drawn due east at half size (21,097.5 m): a
/// distance along it counts twice in the mats' metres.
fn marathon_on_a_route() -> Race {
    let o = LatLon {
        lat: 59.0,
        lon: 18.0,
    };
    let route = vec![o, o.offset_m(10_000.0, 0.0), o.offset_m(21_097.5, 0.0)];
    marathon_on(schemas::Clock::Net, None, Some(route))
}

#[test]
fn gps_moves_a_chip_timed_runner_between_mats_but_only_mats_rank_them() {
    let race = marathon_on_a_route();
    let at = |s: i64, east_m: f64| (T0 + s * 1000, fix(east_m, 3.0));
    let mut obs = vec![read("start", 0), at(600, 1000.0)];
    let (p, splits) = fold_all(&race, "a", &obs);
    assert!(splits.is_empty());
    assert_eq!((p.status, p.progress_mm), (Status::Racing, 0));
    let live = p.live_mm.expect("a GPS fix past the start mat");
    assert!(
        (live - 2_000_000).abs() < 2_000,
        "1 km along the half-size route: {live}"
    );
    // The 5K mat reads them: it ranks them, and they are there now.
    obs.push(read("5k", 1500));
    let (p, splits) = fold_all(&race, "a", &obs);
    assert_eq!(splits, vec![T0 + 1_500_000]);
    assert_eq!((p.progress_mm, p.live_mm), (5_000_000, None));
    // A fix a little behind the mat (GPS noise) does not move them back.
    obs.push(at(1510, 2_450.0));
    let (p, _) = fold_all(&race, "a", &obs);
    assert_eq!((p.progress_mm, p.live_mm), (5_000_000, None));
    // Further on, GPS moves them; the mat still ranks them, and the
    // position is the fix's.
    obs.push(at(2100, 3_500.0));
    let (p, splits) = fold_all(&race, "a", &obs);
    let live = p.live_mm.expect("past the 5K mat");
    assert!((live - 7_000_000).abs() < 2_000, "{live}");
    assert_eq!(
        (p.progress_mm, p.splits, p.reached_ms),
        (5_000_000, 1, T0 + 1_500_000)
    );
    assert_eq!(splits.len(), 1, "GPS makes no split");
    assert!(p.position_e7.is_some());
    let standing = crate::jobs::standings::standing(&p, p.status, |_| None);
    assert_eq!(standing.progress_mm, live, "the row shows where they are");
    // GPS at the end of the route does not finish them: the finish mat does.
    for k in 1..=36 {
        obs.push(at(
            2100 + k * 300,
            (3_500.0 + k as f64 * 600.0).min(21_097.5),
        ));
    }
    let (p, _) = fold_all(&race, "a", &obs);
    assert_eq!(p.status, Status::Racing);
    let live = p.live_mm.unwrap();
    assert!(
        (42_190_000..=42_195_000).contains(&live),
        "at the finish, not past it: {live}"
    );
    obs.push(read("finish", 13_000));
    let (p, splits) = fold_all(&race, "a", &obs);
    assert_eq!(splits, vec![T0 + 1_500_000, MISSED, T0 + 13_000_000]);
    assert_eq!(
        (p.status, p.progress_mm, p.live_mm),
        (Status::Finished, 42_195_000, None)
    );
}

#[test]
fn gps_starts_a_chip_timed_runner_the_start_mat_missed_once_their_wave_is_off() {
    let race = marathon_on_a_route();
    // `b` runs in w2 (120 s after the gun): moving before it is not a start.
    let (p, _) = fold_all(&race, "b", &[(T0 + 60_000, fix(100.0, 0.0))]);
    assert_eq!((p.status, p.live_mm), (Status::NotStarted, None));
    let obs = [
        (T0 + 60_000, fix(0.0, 0.0)),
        (T0 + 300_000, fix(400.0, 0.0)),
    ];
    let (p, _) = fold_all(&race, "b", &obs);
    assert_eq!(p.status, Status::Racing);
    assert!(p.live_mm.is_some_and(|l| (l - 800_000).abs() < 2_000));
    // Without a route GPS says nothing in a chip-timed race.
    let (p, _) = fold_all(&marathon(schemas::Clock::Net, None), "b", &obs);
    assert_eq!((p.status, p.live_mm), (Status::NotStarted, None));
}
