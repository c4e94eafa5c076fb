//! `race_standings` under a short lateness horizon against its sequential
//! reference: points that arrive late inside the horizon and beyond it, on a
//! loop course and on timing lines (defined only in round 3), with 1 and 4
//! workers. The views equal the reference's over what
//! [`admit`](pace_pipeline::jobs::standings::admit) lets in, after every
//! round, and the job refuses exactly the others. Points of a race nobody
//! defines are held within a bound.

mod common;

use std::collections::BTreeSet;

use common::Fed;
use common::courses::*;
use pace_pipeline::jobs::standings::{
    Definition, MAX_HELD, Obs, Observation, Refusal, ViewRow, Why, admit, definition, reference,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use schemas::{RaceKind, RaceRules, TimingLine};
type Row = common::RaceRow;

const ROUNDS: u64 = 10;

/// Race `laps`: 6 laps of a timing line `finish`.
fn laps_race(rules: RaceRules) -> schemas::RaceDefinition {
    race(
        "laps",
        RaceKind::TimingLines {
            lines: vec![TimingLine {
                id: "finish".into(),
                name: String::new(),
                ends: None,
            }],
        },
        6,
        rules,
    )
}

/// A seeded race day under a 20 s lateness horizon: each participant's
/// points in time order, a fifth of them held back by 1–25 places of their
/// participant's sequence (about 2–50 s: some inside the horizon, some
/// beyond), the participants interleaved at random and cut into rounds in
/// arrival order; the timing race is defined only in round 3.
fn late_input(seed: u64) -> (Vec<Vec<Observation>>, Vec<(u64, Definition)>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let rules = RaceRules {
        max_speed_mps: Some(15.0),
        min_lap_s: Some(30.0),
        allowed_lateness_s: Some(20.0),
        ..Default::default()
    };
    let loop_def = loop_race(rules.clone());
    let timing_def = laps_race(rules);
    let mut sequences: Vec<Vec<Observation>> = Vec::new();
    for p in 0..5 {
        let id = format!("p{p}");
        let speed = rng.random_range(3.0..8.0);
        let mut laps: Vec<(f64, f64)> = vec![(-10.0, -10.0)];
        for _ in 0..3 {
            laps.extend(SQUARE.iter().copied());
        }
        laps.push((0.0, 0.0));
        sequences.push(walk(&mut rng, "loop", &id, &laps, speed));
        // Crossings every 31–45 s, a few of them false reads 2 s after.
        let mut t = T0 + rng.random_range(0..2_000);
        let mut crossings = Vec::new();
        for _ in 0..8 {
            crossings.push(obs(
                "laps",
                &id,
                t,
                Obs::Cross {
                    line: "finish".into(),
                },
            ));
            if rng.random_range(0..4) == 0 {
                crossings.push(obs(
                    "laps",
                    &id,
                    t + 2_000,
                    Obs::Cross {
                        line: "finish".into(),
                    },
                ));
            }
            t += rng.random_range(31_000..45_000);
        }
        sequences.push(crossings);
    }
    // Hold some back within each sequence.
    for seq in &mut sequences {
        let mut keyed: Vec<(usize, usize, Observation)> = seq
            .drain(..)
            .enumerate()
            .map(|(i, o)| {
                let delay = if rng.random_range(0..5) == 0 {
                    rng.random_range(1..=25)
                } else {
                    0
                };
                (i + delay, i, o)
            })
            .collect();
        keyed.sort_by_key(|k| (k.0, k.1));
        *seq = keyed.into_iter().map(|k| k.2).collect();
    }
    // Interleave the sequences, each in its order.
    let mut arrival = Vec::new();
    let mut next = vec![0; sequences.len()];
    loop {
        let open: Vec<usize> = (0..sequences.len())
            .filter(|&k| next[k] < sequences[k].len())
            .collect();
        if open.is_empty() {
            break;
        }
        let k = open[rng.random_range(0..open.len())];
        arrival.push(sequences[k][next[k]].clone());
        next[k] += 1;
    }
    let rounds: Vec<Vec<Observation>> = arrival
        .chunks(arrival.len().div_ceil(ROUNDS as usize))
        .map(<[Observation]>::to_vec)
        .collect();
    let definitions = vec![
        (0, definition(&loop_def, 1)),
        (3, definition(&timing_def, 1)),
    ];
    (rounds, definitions)
}

/// What the horizon test compares: a view row, or a point refused.
type Judged = Result<Row, Refusal>;

fn views_and_refused(
    input: differential_dataflow::VecCollection<'_, u64, Fed>,
) -> differential_dataflow::VecCollection<'_, u64, Judged> {
    use differential_dataflow::AsCollection;
    use timely::dataflow::operators::vec::Map;
    let reads = input.clone().flat_map(Fed::read);
    let definitions = input.flat_map(Fed::definition);
    let (views, refused) = pace_pipeline::jobs::standings::race_standings_durable(
        reads,
        definitions,
        pace_pipeline::snapshot::Checkpoint::none(),
    );
    views
        .map(Ok)
        .concat(refused.map(|(r, t)| (Err(r), t, 1)).as_collection())
}

#[test]
fn late_points_inside_the_horizon_are_judged_and_beyond_it_refused() {
    for seed in [11, 12, 13] {
        let (rounds, definitions) = late_input(seed);
        // The reference: the horizon over the arrival order, then the
        // views over what it lets in, after every round.
        let mut expected: Vec<(Judged, u64, isize)> = Vec::new();
        let mut previous = BTreeSet::new();
        let (mut refused_before, mut arrived) = (BTreeSet::new(), Vec::new());
        for (round, list) in rounds.iter().enumerate() {
            let round = round as u64;
            arrived.extend(list.iter().cloned());
            let defs: Vec<Definition> = definitions
                .iter()
                .filter(|d| d.0 <= round)
                .map(|d| d.1.clone())
                .collect();
            let (admitted, refused) = admit(&arrived, &defs);
            let now = reference(&admitted, &[], &defs).rows();
            expected.extend(
                previous
                    .difference(&now)
                    .map(|r| (Ok(r.clone()), round, -1)),
            );
            expected.extend(now.difference(&previous).map(|r| (Ok(r.clone()), round, 1)));
            // A refusal is final: the prefix's refusals only grow (those of
            // a race defined late, when it is).
            let refused: BTreeSet<Refusal> = refused.into_iter().collect();
            assert!(refused.is_superset(&refused_before));
            expected.extend(
                refused
                    .difference(&refused_before)
                    .map(|r| (Err(r.clone()), round, 1)),
            );
            refused_before = refused;
            previous = now;
        }
        let all_defs: Vec<Definition> = definitions.iter().map(|d| d.1.clone()).collect();
        let (admitted, refused) = admit(&arrived, &all_defs);
        // The input exercises what it should: points refused beyond the
        // horizon in both races, and points late inside it judged.
        for race in ["loop", "laps"] {
            assert!(
                refused.iter().any(|r| r.observation.race == race),
                "seed {seed}: {race} refuses some"
            );
        }
        let late_inside = admitted
            .iter()
            .enumerate()
            .filter(|(i, o)| {
                admitted[..*i].iter().any(|e| {
                    (&e.race, &e.participant, e.what.source())
                        == (&o.race, &o.participant, o.what.source())
                        && e.time_ms > o.time_ms
                })
            })
            .count();
        assert!(late_inside >= 10, "seed {seed}: {late_inside} late inside");
        let finals = reference(&admitted, &[], &all_defs);
        for race in ["loop", "laps"] {
            assert_eq!(finals.standings[race].len(), 5, "seed {seed} {race}");
        }
        let expected = {
            let mut e = expected;
            differential_dataflow::consolidation::consolidate_updates(&mut e);
            e.sort();
            e
        };
        let too_late_before = points_outcome("too_late");
        for workers in [1, 4] {
            let mut input: Vec<Vec<Fed>> = rounds
                .iter()
                .map(|list| list.iter().cloned().map(Fed::Observation).collect())
                .collect();
            for (r, d) in &definitions {
                input[*r as usize].push(Fed::Definition(d.clone()));
            }
            let mut got =
                common::run_rounds_by(input, workers, common::standings_reader, views_and_refused);
            differential_dataflow::consolidation::consolidate_updates(&mut got);
            got.sort();
            assert_eq!(got, expected, "seed {seed}, {workers} workers");
        }
        assert!(
            points_outcome("too_late") >= too_late_before + 2 * refused.len() as u64,
            "refusals are counted"
        );
    }
}

/// Points of a race not defined yet are held until it is, at most
/// `MAX_HELD` on a worker: past that each is refused as `unknown_race`
/// (a dead letter), so points for races nobody defines cannot grow pace
/// without bound; once the race is defined, the held ones are judged.
#[test]
fn points_of_an_undefined_race_are_held_within_a_bound() {
    let over = 25;
    let participants = 100;
    let per = (MAX_HELD + over).div_ceil(participants);
    let mut points = Vec::new();
    for k in 0..per {
        for p in 0..participants {
            if points.len() < MAX_HELD + over {
                let line = Obs::Cross {
                    line: "finish".into(),
                };
                points.push(Fed::Observation(obs(
                    "laps",
                    format!("p{p}"),
                    T0 + k as i64 * 31_000,
                    line,
                )));
            }
        }
    }
    let timing = laps_race(RaceRules::default());
    let input = vec![points, vec![Fed::Definition(definition(&timing, 1))]];
    let unknown_before = points_outcome("unknown_race");
    let got = common::run_rounds_by(input, 1, common::standings_reader, views_and_refused);
    let refused: Vec<&(Judged, u64, isize)> = got.iter().filter(|(j, ..)| j.is_err()).collect();
    assert_eq!(refused.len(), over, "the points past the bound");
    for (j, round, diff) in &refused {
        let r = j.as_ref().unwrap_err();
        assert_eq!((&r.why, *round, *diff), (&Why::Undefined, 0, 1));
        assert!(
            r.reason()
                .starts_with("unknown_race: race laps is not defined"),
            "{}",
            r.reason()
        );
    }
    assert_eq!(points_outcome("unknown_race"), unknown_before + over as u64);
    // The held ones are judged once the race is defined: every participant ranked.
    let ranked = got
        .iter()
        .filter(|(j, round, diff)| {
            *round == 1 && *diff > 0 && matches!(j, Ok((_, ViewRow::Rank(_))))
        })
        .count();
    assert_eq!(
        ranked, participants,
        "every participant has a rank once the race is defined"
    );
}

/// A participant's records of one epoch are judged in the order of their
/// partition (their offsets), whatever order the dataflow delivers them in:
/// timely may hand an operator the containers of one time in any order. Five
/// minutes of one runner's laps in one epoch, delivered newest first, with a
/// lateness of 120 s: none is refused, and the views are those of the laps
/// in order.
#[test]
fn an_epoch_is_judged_in_partition_order_whatever_order_it_arrives_in() {
    let timing = laps_race(RaceRules::default());
    let laps: Vec<Observation> = (0..6)
        .map(|k| {
            let line = Obs::Cross {
                line: "finish".into(),
            };
            obs("laps", "p0", T0 + k * 60_000, line).read_at(3, 100 + k)
        })
        .collect();
    let mut input: Vec<Fed> = vec![Fed::Definition(definition(&timing, 1))];
    input.extend(laps.iter().rev().cloned().map(Fed::Observation));
    let got = common::run_rounds_by(vec![input], 1, common::standings_reader, views_and_refused);
    let refused: Vec<_> = got.iter().filter(|(j, ..)| j.is_err()).collect();
    assert!(refused.is_empty(), "refused: {refused:?}");
    let views: BTreeSet<Row> = (got.iter())
        .filter(|(_, _, d)| *d > 0)
        .filter_map(|(j, ..)| j.clone().ok())
        .collect();
    assert_eq!(
        views,
        reference(&laps, &[], &[definition(&timing, 1)]).rows()
    );
}
