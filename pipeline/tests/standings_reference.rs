//! `race_standings` against its sequential reference on seeded random input
//! with late, duplicated and same-time points, with 1 and 4 workers: the
//! changes of every round must equal the reference's.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use differential_dataflow::input::Input;
use pace_pipeline::jobs::standings::{Fix, Standing, race_standings, reference_standings};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use timely::dataflow::operators::Capture;
use timely::dataflow::operators::capture::Extract;

type Update = ((String, Standing), u64, isize);

struct TestInput {
    /// (round it arrives in, fix)
    points: Vec<(u64, Fix)>,
    /// (round it is defined in, race)
    races: Vec<(u64, String)>,
    rounds: u64,
}

fn random_input(seed: u64) -> TestInput {
    let mut rng = StdRng::seed_from_u64(seed);
    let rounds = 12;
    let mut points = Vec::new();
    for race in ["r1", "r2", "r3"] {
        for p in 0..8 {
            let (mut lat, mut lon) = (593_000_000i64 + rng.random_range(0..1000), 180_000_000i64);
            for step in 0..40 {
                let t = 1_780_000_000_000 + step * 7_000 + rng.random_range(0..3_000);
                lat += rng.random_range(-50..400);
                lon += rng.random_range(-50..400);
                let fix = (race.to_string(), format!("p{p}"), t, lat, lon);
                let round = rng.random_range(0..rounds);
                points.push((round, fix.clone()));
                match rng.random_range(0..10) {
                    // the same point again, perhaps in another round
                    0 => points.push((rng.random_range(0..rounds), fix)),
                    // another point with the same time
                    1 => {
                        points.push((rng.random_range(0..rounds), (fix.0, fix.1, t, lat - 7, lon)))
                    }
                    _ => {}
                }
            }
        }
    }
    // r4 has points but is never defined.
    points.push((2, ("r4".into(), "x".into(), 1_780_000_000_000, 1, 1)));
    let races = vec![
        (0, "r1".into()),
        (0, "r2".into()),
        (5, "r3".into()),
        (7, "r1".into()),
    ];
    TestInput {
        points,
        races,
        rounds,
    }
}

/// The reference: at each round, the standings of each defined race from all
/// points arrived so far; emitted as differences.
fn reference(input: &TestInput) -> Vec<Update> {
    let mut out = Vec::new();
    let mut previous: BTreeMap<String, Vec<Standing>> = BTreeMap::new();
    for round in 0..input.rounds {
        let defined: std::collections::BTreeSet<&String> = input
            .races
            .iter()
            .filter(|(r, _)| *r <= round)
            .map(|(_, id)| id)
            .collect();
        let mut now: BTreeMap<String, Vec<Standing>> = BTreeMap::new();
        for race in defined {
            let fixes: Vec<Fix> = input
                .points
                .iter()
                .filter(|(r, f)| *r <= round && &f.0 == race)
                .map(|(_, f)| f.clone())
                .collect();
            if !fixes.is_empty() {
                now.insert(race.clone(), reference_standings(&fixes));
            }
        }
        let races: std::collections::BTreeSet<String> =
            previous.keys().chain(now.keys()).cloned().collect();
        for race in races {
            let old = previous.get(&race).cloned().unwrap_or_default();
            let new = now.get(&race).cloned().unwrap_or_default();
            for s in &old {
                if !new.contains(s) {
                    out.push(((race.clone(), s.clone()), round, -1));
                }
            }
            for s in &new {
                if !old.contains(s) {
                    out.push(((race.clone(), s.clone()), round, 1));
                }
            }
        }
        previous = now;
    }
    out
}

fn differential(input: &TestInput, workers: usize) -> Vec<Update> {
    let (send, recv) = std::sync::mpsc::channel();
    let send = Arc::new(Mutex::new(send));
    let points = input.points.clone();
    let races = input.races.clone();
    let rounds = input.rounds;
    timely::execute(timely::Config::process(workers), move |worker| {
        let send = send.lock().unwrap().clone();
        let (mut gps, mut defs) = worker.dataflow::<u64, _, _>(|scope| {
            let (gps_in, gps) = scope.new_collection::<Fix, isize>();
            let (defs_in, defs) = scope.new_collection::<String, isize>();
            race_standings(gps, defs).inner.capture_into(send);
            (gps_in, defs_in)
        });
        // Each worker feeds its share; the union is the whole input.
        let (index, peers) = (worker.index(), worker.peers());
        for round in 0..rounds {
            for (i, (r, fix)) in points.iter().enumerate() {
                if *r == round && i % peers == index {
                    gps.insert(fix.clone());
                }
            }
            for (i, (r, race)) in races.iter().enumerate() {
                if *r == round && i % peers == index {
                    defs.insert(race.clone());
                }
            }
            gps.advance_to(round + 1);
            defs.advance_to(round + 1);
        }
    })
    .unwrap();
    recv.extract()
        .into_iter()
        .flat_map(|(_, updates)| updates)
        .collect()
}

fn normalise(mut updates: Vec<Update>) -> Vec<Update> {
    differential_dataflow::consolidation::consolidate_updates(&mut updates);
    updates.sort();
    updates
}

#[test]
fn standings_equal_sequential_reference_one_and_four_workers() {
    for seed in [1, 2, 3] {
        let input = random_input(seed);
        let expected = normalise(reference(&input));
        assert!(expected.len() > 100, "the input exercises the job");
        assert!(expected.iter().any(|u| u.2 < 0), "and its retractions");
        for workers in [1, 4] {
            let got = normalise(differential(&input, workers));
            assert_eq!(got, expected, "seed {seed}, {workers} workers");
        }
    }
}
