//! `race_standings` on small hand-made cases, each with 2 workers: a late
//! point that corrects splits, an impossible jump, the built-in demo race
//! judged like a real one, and an epoch that emits only what changed. (The
//! random races against the sequential reference are
//! `standings_reference.rs`.)

mod common;

use common::Fed;
use common::courses::*;

use std::collections::BTreeSet;

use pace_pipeline::jobs::standings::{
    Definition, Obs, Observation, SplitRow, Standing, ViewRow, definition, reference,
};
use schemas::{RaceKind, RaceRules, Timestamp, TimingLine};

type Row = common::RaceRow;
type Update = (Row, u64, isize);

/// Runs rounds of observations (the definitions in the first) through the
/// job with 2 workers; every update, consolidated.
fn rounds(definitions: Vec<Definition>, rounds: Vec<Vec<Observation>>) -> Vec<Update> {
    let mut fed: Vec<Vec<Fed>> = (rounds.into_iter())
        .map(|list| list.into_iter().map(Fed::Observation).collect())
        .collect();
    fed[0].extend(definitions.into_iter().map(Fed::Definition));
    common::run_rounds_by(fed, 2, common::standings_reader, common::standings_views)
}

fn cross(p: &str, seconds: i64) -> Observation {
    obs(
        "laps",
        p,
        T0 + seconds * 1000,
        Obs::Cross {
            line: "line".into(),
        },
    )
}

#[test]
fn a_late_point_corrects_splits_with_a_counted_retraction() {
    let mut def = race(
        "laps",
        RaceKind::TimingLines {
            lines: vec![TimingLine {
                id: "line".into(),
                name: String::new(),
                ends: None,
            }],
        },
        3,
        RaceRules {
            min_lap_s: Some(30.0),
            ..Default::default()
        },
    );
    def.participants = vec![];
    let corrections = points_outcome("correction");
    // Round 0: both start; a's lap 1 at 60 s, b's at 62 s (a late read).
    // Round 1: b's real crossing at 58 s arrives; 62 s is now a false read.
    let updates = rounds(
        vec![definition(&def, 0)],
        vec![
            vec![cross("a", 0), cross("b", 0), cross("a", 60), cross("b", 62)],
            vec![cross("b", 58)],
        ],
    );
    let split = |p: &str, s: i64, position: u32| SplitRow {
        participant: p.into(),
        split: 1,
        time_ms: T0 + s * 1000,
        position,
        gender_position: None,
        category_position: None,
    };
    let at = |round: u64, row: SplitRow, diff: isize| {
        updates.contains(&(("laps".to_string(), ViewRow::Split(row)), round, diff))
    };
    assert!(at(0, split("a", 60, 1), 1) && at(0, split("b", 62, 2), 1));
    assert!(
        at(1, split("b", 62, 2), -1),
        "the late point retracts b's split: {updates:#?}"
    );
    assert!(
        at(1, split("b", 58, 1), 1) && at(1, split("a", 60, 1), -1) && at(1, split("a", 60, 2), 1)
    );
    assert!(
        points_outcome("correction") > corrections,
        "and the correction is counted"
    );
    // The same input in order gives the same final view.
    let ordered = rounds(
        vec![definition(&def, 0)],
        vec![vec![
            cross("a", 0),
            cross("b", 0),
            cross("b", 58),
            cross("a", 60),
            cross("b", 62),
        ]],
    );
    let last = |u: &[Update]| {
        let mut all: Vec<Update> = u.iter().map(|(d, _, r)| (d.clone(), 0, *r)).collect();
        common::normalise(std::mem::take(&mut all))
    };
    assert_eq!(last(&updates), last(&ordered));
}

#[test]
fn an_impossible_jump_is_rejected_and_counted() {
    let line = [(0.0, 0.0), (2000.0, 0.0)];
    let def = race(
        "straight",
        RaceKind::Course {
            polyline: line.iter().map(|p| at(p.0, p.1)).collect(),
            is_loop: false,
        },
        1,
        RaceRules {
            max_speed_mps: Some(10.0),
            ..Default::default()
        },
    );
    let point = |s: i64, x: f64| {
        let ll = at(x, 0.0);
        obs(
            "straight",
            "p",
            T0 + s * 1000,
            Obs::Fix {
                lat_e7: (ll.lat * 1e7).round() as i64,
                lon_e7: (ll.lon * 1e7).round() as i64,
            },
        )
    };
    let rejected = points_outcome("rejected");
    let clean = vec![
        point(0, 0.0),
        point(10, 80.0),
        point(20, 160.0),
        point(30, 240.0),
    ];
    let mut jumpy = clean.clone();
    jumpy.push(point(15, 1_500.0)); // 1.4 km in 5 s
    let distance = |u: &[Update]| -> Vec<i64> {
        u.iter()
            .filter_map(|((_, row), _, diff)| match row {
                ViewRow::Standing(s) if *diff > 0 => Some(s.progress_mm),
                _ => None,
            })
            .collect()
    };
    let with_jump = rounds(vec![definition(&def, 0)], vec![jumpy]);
    let without = rounds(vec![definition(&def, 0)], vec![clean]);
    assert_eq!(distance(&with_jump), distance(&without));
    assert!(
        (distance(&without)[0] - 240_000).abs() < 100,
        "{:?}",
        distance(&without)
    );
    assert!(points_outcome("rejected") > rejected, "the jump is counted");
}

#[test]
fn the_built_in_race_is_judged_like_a_real_one() {
    let mut demo = ingest::generate::DemoRace::new("demo", 200, 11, Timestamp(T0));
    let mut observations: Vec<Observation> = Vec::new();
    while !demo.finished() {
        observations.extend(
            demo.tick()
                .into_iter()
                .map(pace_pipeline::jobs::standings::fix),
        );
    }
    let rejected = points_outcome("rejected");
    let updates = rounds(
        vec![definition(&demo.definition, 0)],
        vec![observations.clone()],
    );
    let views = reference(&observations, &[], &[definition(&demo.definition, 0)]);
    let rows = &views.standings["demo"];
    let finished: Vec<&Standing> = rows
        .iter()
        .filter(|s| s.status == schemas::Status::Finished)
        .collect();
    let retired = rows
        .iter()
        .filter(|s| s.status == schemas::Status::Retired)
        .count();
    assert!(
        finished.len() >= 180 && retired >= 1,
        "{} finished, {retired} retired",
        finished.len()
    );
    // The rest dropped out: retired, or racing still if they stopped within
    // the race's retire_after_s of its last point.
    assert!(
        rows.iter()
            .filter(|s| s.status != schemas::Status::Finished)
            .all(|s| s.laps < Some(4))
    );
    // Finishers first, in finishing order, with four laps each.
    assert!(finished.iter().all(|s| s.laps == Some(4)));
    assert!(
        rows[..finished.len()]
            .iter()
            .all(|s| s.status == schemas::Status::Finished)
    );
    assert!(finished.windows(2).all(|w| w[0].gap_ms <= w[1].gap_ms));
    assert_eq!(
        views.splits["demo"].len(),
        rows.iter().map(|s| s.laps.unwrap() as usize).sum::<usize>()
    );
    // Multipath outliers were rejected, not run.
    assert!(points_outcome("rejected") > rejected);
    // And the dataflow agrees.
    let expected: Vec<Update> = views.rows().into_iter().map(|r| (r, 0, 1)).collect();
    assert_eq!(updates, common::normalise(expected));
}

/// An epoch emits the rows that changed, not the race: a leader's step is
/// its own row and one leader record; a move past three others is one row
/// and four places.
#[test]
fn an_epoch_emits_only_the_rows_that_changed() {
    let def = race(
        "field",
        RaceKind::Course {
            polyline: vec![at(0.0, 0.0), at(3000.0, 0.0)],
            is_loop: false,
        },
        1,
        RaceRules {
            max_speed_mps: Some(50.0),
            ..Default::default()
        },
    );
    let point = |p: usize, s: i64, x: f64| {
        let ll = at(x, 0.0);
        obs(
            "field",
            format!("p{p:03}"),
            T0 + s * 1000,
            Obs::Fix {
                lat_e7: (ll.lat * 1e7).round() as i64,
                lon_e7: (ll.lon * 1e7).round() as i64,
            },
        )
    };
    // 300 runners 2 m apart; then the leader runs on; then the 201st passes three.
    let field = |i: usize| point(i, 100, 1000.0 - 2.0 * i as f64);
    let updates = rounds(
        vec![definition(&def, 0)],
        vec![
            (0..300).map(field).collect(),
            vec![point(0, 110, 1100.0)],
            vec![point(200, 120, 607.0)],
        ],
    );
    let inserted = |round: u64| {
        let (mut rows, mut places) = (BTreeSet::new(), BTreeSet::new());
        let mut leaders = 0;
        for ((_, row), r, diff) in &updates {
            match row {
                ViewRow::Standing(s) if *r == round && *diff > 0 => {
                    rows.insert(s.participant.clone());
                }
                ViewRow::Rank(p) if *r == round && *diff > 0 => {
                    places.insert((p.participant.clone(), p.rank));
                }
                ViewRow::Leader(_) if *r == round && *diff > 0 => leaders += 1,
                _ => {}
            }
        }
        (rows, places, leaders)
    };
    assert_eq!(inserted(0).0.len(), 300);
    assert_eq!(inserted(0).1.len(), 300);
    let ids = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(inserted(1), (ids(&["p000"]), BTreeSet::new(), 1));
    let places = [("p200", 198), ("p197", 199), ("p198", 200), ("p199", 201)]
        .map(|(p, r)| (p.to_owned(), r));
    assert_eq!(inserted(2), (ids(&["p200"]), BTreeSet::from(places), 0));
    // And the rows are the reference's.
    let everything: Vec<Observation> = (0..300)
        .map(field)
        .chain([point(0, 110, 1100.0), point(200, 120, 607.0)])
        .collect();
    let views = reference(&everything, &[], &[definition(&def, 0)]);
    let rows = &views.standings["field"];
    assert_eq!(rows[0].participant, "p000");
    assert_eq!(
        rows[197..201]
            .iter()
            .map(|s| s.participant.as_str())
            .collect::<Vec<_>>(),
        ["p200", "p197", "p198", "p199"]
    );
    let got: Vec<Update> = updates.iter().map(|(d, _, r)| (d.clone(), 0, *r)).collect();
    let want: Vec<Update> = views.rows().into_iter().map(|r| (r, 0, 1)).collect();
    assert_eq!(common::normalise(got), common::normalise(want));
}
