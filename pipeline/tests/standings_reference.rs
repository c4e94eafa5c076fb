//! `race_standings` against its sequential reference on seeded random races
//! of every kind (loop and out-and-back courses, marks, timing lines), with
//! shuffled, duplicated, same-time and delayed points, impossible jumps and
//! false reads, and definitions that arrive late or change: with 1 and 4
//! workers, the views after every round must equal the reference's over the
//! input that has arrived. (The lateness horizon has its own test,
//! `standings_horizon.rs`.)

mod common;

use common::Fed;
use common::courses::*;

use std::collections::BTreeSet;

use pace_pipeline::jobs::standings::{
    Definition, Entry, Obs, Observation, ViewRow, definition, reference,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use schemas::{Clock, Mark, Participant, RaceKind, RaceRules, TimingLine, TimingMat, Wave};
type Row = common::RaceRow;
type Update = (Row, u64, isize);

const ROUNDS: u64 = 10;

struct TestInput {
    /// (round it arrives in, observation)
    observations: Vec<(u64, Observation)>,
    /// (round it arrives in, entrant)
    entrants: Vec<(u64, Entry)>,
    /// (round it arrives in, definition)
    definitions: Vec<(u64, Definition)>,
}

fn random_input(seed: u64) -> TestInput {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut observations = Vec::new();
    // Points arrive anywhere in ten rounds, so a race's whole length late:
    // a horizon of a day keeps them all inside (the horizon has its own test).
    let rules = |s: f64, lap: f64| RaceRules {
        max_speed_mps: Some(s),
        min_lap_s: Some(lap),
        allowed_lateness_s: Some(86_400.0),
        ..Default::default()
    };
    let loop_def = loop_race(rules(15.0, 0.0));
    // Out 500 m and back along the other side of the road.
    let oab = [(0.0, 0.0), (500.0, 0.0), (500.0, 12.0), (0.0, 12.0)];
    let oab_def = race(
        "oab",
        RaceKind::Course {
            polyline: oab.iter().map(|p| at(p.0, p.1)).collect(),
            is_loop: false,
        },
        1,
        rules(15.0, 0.0),
    );
    // Start line, a mark, a gate, the finish line.
    let marks_def = race(
        "marks",
        RaceKind::Marks {
            start: [at(-40.0, 0.0), at(40.0, 0.0)],
            marks: vec![
                Mark {
                    name: "M1".into(),
                    points: vec![at(0.0, 400.0)],
                },
                Mark {
                    name: "G".into(),
                    points: vec![at(-30.0, 50.0), at(30.0, 50.0)],
                },
            ],
            finish: [at(-40.0, 300.0), at(40.0, 300.0)],
        },
        1,
        rules(20.0, 0.0),
    );
    let timing_def = race(
        "laps",
        RaceKind::TimingLines {
            lines: vec![
                TimingLine {
                    id: "finish".into(),
                    name: String::new(),
                    ends: None,
                },
                TimingLine {
                    id: "half".into(),
                    name: String::new(),
                    ends: None,
                },
            ],
        },
        4,
        rules(20.0, 30.0),
    );
    // Chip timing: a start mat, three along the course (the last with a
    // cutoff), the finish; two waves a minute apart, ranked by net time.
    // The route is drawn at half size (2 km for the mats' 4 km): every
    // other runner also carries a GPS tracker.
    let route = [(0.0, 0.0), (1000.0, 0.0), (1000.0, 1000.0)];
    let mut mats_def = race(
        "mats",
        RaceKind::Mats {
            course: Some(route.iter().map(|p| at(p.0, p.1)).collect()),
            mats: [0.0, 1000.0, 2000.0, 3000.0, 4000.0]
                .iter()
                .enumerate()
                .map(|(i, d)| TimingMat {
                    id: format!("m{i}"),
                    name: String::new(),
                    distance_m: *d,
                    cutoff_s: (i == 3).then_some(900.0),
                })
                .collect(),
        },
        1,
        RaceRules {
            clock: Some(Clock::Net),
            waves: vec![
                Wave {
                    id: "w1".into(),
                    offset_s: 0.0,
                },
                Wave {
                    id: "w2".into(),
                    offset_s: 60.0,
                },
            ],
            ..rules(20.0, 0.0)
        },
    );
    mats_def.participants = (0..6)
        .map(|p| Participant {
            id: format!("p{p}"),
            name: String::new(),
            wave: Some(if p < 3 { "w1" } else { "w2" }.into()),
            ..Default::default()
        })
        .collect();
    for p in 0..6 {
        let id = format!("p{p}");
        // Chip reads: the start mat (sometimes missed), each mat at the
        // runner's pace (some missed, some read twice), the finish.
        let wave = if p < 3 { 0 } else { 60_000 };
        let start = T0 + wave + rng.random_range(0..30_000);
        let pace_ms = rng.random_range(180_000..320_000); // per km
        for m in 0..5 {
            if (m == 0 || m == 2) && rng.random_range(0..4) == 0 {
                continue; // missed
            }
            if p == 0 && m == 4 {
                continue; // the finish mat misses p0, whose GPS goes on
            }
            let t = start + m * pace_ms + rng.random_range(0..2_000);
            let read = Obs::Cross {
                line: format!("m{m}"),
            };
            observations.push(obs("mats", id.clone(), t, read.clone()));
            if rng.random_range(0..4) == 0 {
                observations.push(obs("mats", id.clone(), t + 1_500, read));
            }
        }
        // GPS every 20-60 s at the same pace (a little noisy), from a
        // little before the start to past the finish: it moves the runner
        // between mats, never past one that reads them later.
        let mut t = start - 30_000;
        while p % 2 == 0 && t < start + 5 * pace_ms {
            t += rng.random_range(20_000..60_000);
            let race_m = ((t - start).max(0) as f64 / pace_ms as f64 * 1000.0).min(4000.0);
            let m = race_m / 2.0 + rng.random_range(-8.0..8.0);
            let (x, y) = if m <= 1000.0 {
                (m, rng.random_range(-5.0..5.0))
            } else {
                (1000.0 + rng.random_range(-5.0..5.0), m - 1000.0)
            };
            observations.push(obs("mats", id.clone(), t, fix_at(x, y)));
        }
        let speed = rng.random_range(3.0..9.0);
        let mut laps: Vec<(f64, f64)> = vec![(-10.0, -10.0)];
        for _ in 0..3 {
            laps.extend(SQUARE.iter().copied());
        }
        laps.push((0.0, 0.0));
        laps.push((40.0, 0.0));
        observations.extend(walk(&mut rng, "loop", &id, &laps, speed));
        let mut back = oab.to_vec();
        back.push((-30.0, 12.0));
        observations.extend(walk(&mut rng, "oab", &id, &back, speed));
        let path = [
            (rng.random_range(-30.0..30.0), -30.0),
            (0.0, 20.0),
            (-15.0, 420.0),
            (15.0, 420.0),
            (0.0, 30.0),
            (0.0, 60.0),
            (0.0, 320.0),
        ];
        observations.extend(walk(&mut rng, "marks", &id, &path, speed * 2.0));
        // Timing: the start crossing, then lines alternately, some false reads.
        let mut t = T0 + rng.random_range(0..2_000);
        observations.push(obs(
            "laps",
            id.clone(),
            t,
            Obs::Cross {
                line: "finish".into(),
            },
        ));
        for k in 0..9 {
            t += rng.random_range(35_000..60_000);
            let line = if k % 2 == 0 { "half" } else { "finish" };
            observations.push(obs("laps", id.clone(), t, Obs::Cross { line: line.into() }));
            if rng.random_range(0..4) == 0 {
                observations.push(obs(
                    "laps",
                    id.clone(),
                    t + 2_000,
                    Obs::Cross { line: line.into() },
                ));
            }
        }
    }
    // Undefined race: held, never shown.
    observations.push(obs(
        "ghost",
        "x",
        T0,
        Obs::Cross {
            line: "finish".into(),
        },
    ));
    let mut delivered = Vec::new();
    for o in observations {
        let round = rng.random_range(0..ROUNDS);
        match rng.random_range(0..10) {
            0 => delivered.push((rng.random_range(0..ROUNDS), o.clone())),
            1 => {
                if let Obs::Fix { lat_e7, lon_e7 } = o.what {
                    let twin = Obs::Fix {
                        lat_e7: lat_e7 + 3,
                        lon_e7,
                    };
                    delivered.push((
                        rng.random_range(0..ROUNDS),
                        Observation {
                            what: twin,
                            ..o.clone()
                        },
                    ));
                }
            }
            _ => {}
        }
        delivered.push((round, o));
    }
    delivered.shuffle(&mut rng);
    // A wider loop replaces the first definition in round 6.
    let mut wider = loop_def.clone();
    wider.kind = RaceKind::Course {
        polyline: [(0.0, 0.0), (104.0, 0.0), (104.0, 104.0), (0.0, 104.0)]
            .iter()
            .map(|p| at(p.0, p.1))
            .collect(),
        is_loop: true,
    };
    let definitions = vec![
        (0, definition(&loop_def, 1)),
        (0, definition(&oab_def, 1)),
        (3, definition(&marks_def, 1)),
        (rng.random_range(0..ROUNDS), definition(&timing_def, 1)),
        (6, definition(&wider, 2)),
        (rng.random_range(0..ROUNDS), definition(&mats_def, 1)),
    ];
    // Entrants: genders and categories in the chip-timed and the lap race,
    // arriving in any round; p4's second record (a greater order) moves
    // them to the first wave and into another category.
    let entry = |race: &str,
                 p: u32,
                 order: i64,
                 wave: Option<&str>,
                 gender: &str,
                 category: Option<String>| {
        let listing = Participant {
            id: format!("p{p}"),
            name: format!("Runner {p}"),
            wave: wave.map(Into::into),
            gender: Some(gender.into()),
            category,
        };
        (
            (race.to_owned(), listing.id.clone()),
            (order, listing.into()),
        )
    };
    let mut entrants = Vec::new();
    for p in 0..6 {
        let gender = if p % 2 == 0 { "F" } else { "M" };
        let category = || (p != 5).then(|| format!("C{}", p % 3));
        let wave = if p < 3 { "w1" } else { "w2" };
        entrants.push((
            rng.random_range(0..ROUNDS),
            entry("mats", p, 1, Some(wave), gender, category()),
        ));
        entrants.push((
            rng.random_range(0..ROUNDS),
            entry("laps", p, 1, None, gender, category()),
        ));
    }
    let moved = entry("mats", 4, 2, Some("w1"), "F", Some("C9".into()));
    entrants.push((rng.random_range(0..ROUNDS), moved));
    // Entered, never read: on the start list, then past the first cutoff
    // (m3, 900 s after their wave) did not start.
    entrants.push((
        rng.random_range(0..ROUNDS / 2),
        entry("mats", 9, 1, Some("w2"), "M", None),
    ));
    TestInput {
        observations: delivered,
        entrants,
        definitions,
    }
}

/// The reference at each round over what has arrived, as differences.
fn sequential(input: &TestInput) -> Vec<Update> {
    let mut out = Vec::new();
    let mut previous = BTreeSet::new();
    for round in 0..ROUNDS {
        let obs: Vec<Observation> = input
            .observations
            .iter()
            .filter(|o| o.0 <= round)
            .map(|o| o.1.clone())
            .collect();
        let defs: Vec<Definition> = input
            .definitions
            .iter()
            .filter(|d| d.0 <= round)
            .map(|d| d.1.clone())
            .collect();
        let entrants: Vec<Entry> = (input.entrants.iter())
            .filter(|e| e.0 <= round)
            .map(|e| e.1.clone())
            .collect();
        let now = reference(&obs, &entrants, &defs).rows();
        out.extend(previous.difference(&now).map(|r| (r.clone(), round, -1)));
        out.extend(now.difference(&previous).map(|r| (r.clone(), round, 1)));
        previous = now;
    }
    out
}

/// The job over the input, with `workers` workers: every update.
fn differential(input: &TestInput, workers: usize) -> Vec<Update> {
    common::normalise(raw(input, workers))
}

/// The job over the input, with `workers` workers: every update as the
/// dataflow gave it.
fn raw(input: &TestInput, workers: usize) -> Vec<Update> {
    let mut rounds: Vec<Vec<Fed>> = vec![Vec::new(); ROUNDS as usize];
    for (r, o) in &input.observations {
        rounds[*r as usize].push(Fed::Observation(o.clone()));
    }
    for (r, e) in &input.entrants {
        rounds[*r as usize].push(Fed::Entrant(e.clone()));
    }
    for (r, d) in &input.definitions {
        rounds[*r as usize].push(Fed::Definition(d.clone()));
    }
    common::run_rounds_raw(
        rounds,
        workers,
        common::standings_reader,
        common::standings_views,
    )
}

/// The changelog sink takes the job's rows as they come, unconsolidated
/// (`Job::CONSOLIDATED`): so the dataflow gives each changed row once a
/// time, never a row twice or both inserted and retracted, at any worker count.
#[test]
fn the_views_come_consolidated_as_the_sink_takes_them() {
    use pace_pipeline::job::Job;
    const { assert!(pace_pipeline::jobs::standings::Standings::CONSOLIDATED) };
    for seed in [1, 2, 3] {
        let input = random_input(seed);
        for workers in [1, 4] {
            let updates = raw(&input, workers);
            let mut seen = std::collections::BTreeMap::new();
            for (row, time, diff) in &updates {
                assert!(*diff == 1 || *diff == -1, "{row:?} at {time}: {diff}");
                *seen.entry((time, row)).or_insert(0) += 1;
            }
            let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
            assert!(
                twice.is_empty(),
                "seed {seed}, {workers} workers: {twice:?}"
            );
            assert!(
                updates.len() > 100,
                "seed {seed}: {} updates",
                updates.len()
            );
        }
    }
}

#[test]
fn views_equal_sequential_reference_one_and_four_workers() {
    for seed in [1, 2, 3] {
        let input = random_input(seed);
        let expected = common::normalise(sequential(&input));
        let finals = {
            let obs: Vec<Observation> = input.observations.iter().map(|o| o.1.clone()).collect();
            let defs: Vec<Definition> = input.definitions.iter().map(|d| d.1.clone()).collect();
            let entrants: Vec<Entry> = input.entrants.iter().map(|e| e.1.clone()).collect();
            reference(&obs, &entrants, &defs)
        };
        // The input exercises what it should: every race ranks and splits,
        // someone finishes each, and late points retract rows.
        for race in ["loop", "oab", "marks", "laps", "mats"] {
            let entered_only = usize::from(race == "mats");
            assert_eq!(finals.standings[race].len(), 6 + entered_only, "{race}");
            assert!(
                finals.splits.get(race).map_or(0, Vec::len) >= 6,
                "{race} has splits: {:?}",
                finals.standings[race]
            );
            assert!(
                finals.standings[race]
                    .iter()
                    .any(|s| s.status == schemas::Status::Finished),
                "{race}: {:?}",
                finals.standings[race]
            );
        }
        assert!(!finals.standings.contains_key("ghost"));
        // Positions are counted within genders and categories too, and an
        // entrant's later record moves its participant to another group.
        for race in ["mats", "laps"] {
            let splits = &finals.splits[race];
            assert!(
                splits
                    .iter()
                    .any(|s| s.gender_position.is_some_and(|g| g < s.position)),
                "{race}: positions within a gender"
            );
            assert!(
                (splits.iter()).any(|s| s.category_position.is_some_and(|c| c < s.position)),
                "{race}: positions within a category"
            );
            assert!(
                splits.iter().all(|s| s.gender_position.is_some()),
                "{race}: every participant is entered"
            );
        }
        assert!(
            (finals.splits["mats"].iter())
                .filter(|s| s.participant == "p4")
                .all(|s| s.category_position == Some(1)),
            "p4 alone in C9"
        );
        let p9 = (finals.standings["mats"].iter()).find(|s| s.participant == "p9");
        assert_eq!(
            p9.map(|s| s.status),
            Some(schemas::Status::DidNotStart),
            "an entrant never read, past the first cutoff"
        );
        assert!(
            expected
                .iter()
                .any(|u| u.2 < 0 && matches!((u.0).1, ViewRow::Split(_))),
            "split retractions"
        );
        let p0 = (finals.standings["mats"].iter()).find(|s| s.participant == "p0");
        assert!(
            p0.is_some_and(|s| s.progress_mm > 3_900_000 && s.status != schemas::Status::Finished),
            "GPS moves a chip-timed runner past their last mat, and only a mat finishes them: {p0:?}"
        );
        for workers in [1, 4] {
            let got = common::normalise(differential(&input, workers));
            assert_eq!(got, expected, "seed {seed}, {workers} workers");
        }
    }
}
