//! Tests of `stage.rs`.

use super::*;
use schemas::{RaceDefinition, RaceKind, RaceRules, Status, Timestamp, TimingLine};

use crate::jobs::standings::fold_all;

#[test]
fn compaction_keeps_the_fold() {
    let race = Race::compile(&RaceDefinition {
        id: "r".into(),
        name: "r".into(),
        start: Timestamp(1_780_000_000_000),
        kind: RaceKind::TimingLines {
            lines: vec![TimingLine {
                id: "l".into(),
                name: String::new(),
                ends: None,
            }],
        },
        laps: 100_000,
        cutoff: None,
        participants: vec![],
        // Two reads in three are false: laps stay below the race's 100,000.
        rules: RaceRules {
            min_lap_s: Some(2.5),
            ..Default::default()
        },
    });
    let cross = |i: i64| {
        (
            1_780_000_000_000 + i * 1000,
            Obs::Cross { line: "l".into() },
        )
    };
    let total = MAX_OBSERVATIONS as i64 + 1_000;
    let mut p = Participant::new();
    for chunk in (0..total).collect::<Vec<_>>().chunks(10_000) {
        for &i in chunk {
            let item = cross(i);
            p.observations.insert(item.clone());
            p.touch(&item);
        }
        p.refold(&race, "p");
        p.compact(race.allowed_lateness_ms);
    }
    assert!(p.base.is_some(), "compacted");
    assert!(p.observations.len() <= MAX_OBSERVATIONS);
    // One more in-order crossing: the same as folding everything plainly.
    let item = cross(total);
    p.observations.insert(item.clone());
    p.touch(&item);
    let (progress, splits) = p.refold(&race, "p");
    let all: Vec<_> = (0..=total).map(cross).collect();
    let (want, want_splits) = fold_all(&race, "p", &all);
    assert_eq!(progress, want);
    assert_eq!(splits, want_splits);
    assert_eq!(progress.laps, Some(total as u32 / 3));
    assert_eq!(progress.status, Status::Racing);
}

/// A participant read at 1 Hz for ~3 hours holds about the horizon's
/// worth of fixes, folds to what folding everything gives, and refuses
/// a point behind its base.
#[test]
fn the_horizon_bounds_what_a_participant_holds() {
    let start = 1_780_000_000_000;
    let race = Race::compile(&RaceDefinition {
        id: "r".into(),
        name: "r".into(),
        start: Timestamp(start),
        kind: RaceKind::Course {
            polyline: vec![
                schemas::LatLon {
                    lat: 59.0,
                    lon: 18.0,
                },
                schemas::LatLon {
                    lat: 59.5,
                    lon: 18.0,
                },
            ],
            is_loop: false,
        },
        laps: 1,
        cutoff: None,
        participants: vec![],
        rules: RaceRules::default(),
    });
    assert_eq!(race.allowed_lateness_ms, 120_000, "the default");
    let fix = |i: i64| {
        let lat_e7 = 590_000_000 + i * 30; // about 3.3 m/s north
        (
            start + i * 1000,
            Obs::Fix {
                lat_e7,
                lon_e7: 180_000_000,
            },
        )
    };
    let mut p = Participant::new();
    let mut all = Vec::new();
    for chunk in (0..10_000).collect::<Vec<i64>>().chunks(50) {
        for &i in chunk {
            let item = fix(i);
            let behind = p.arrive(&item);
            assert!(!p.too_late(&item, behind, race.allowed_lateness_ms));
            p.apply(item.clone(), 1);
            all.push(item);
        }
        p.refold(&race, "p");
        p.compact(race.allowed_lateness_ms);
        let most = 120 + 50 + CHECKPOINT_EVERY as usize;
        assert!(
            p.observations.len() <= most,
            "{} held",
            p.observations.len()
        );
    }
    // A point 100 s late (inside the horizon) still re-folds exactly.
    let late = (
        start + 9_900 * 1000 + 500,
        Obs::Fix {
            lat_e7: 590_297_015,
            lon_e7: 180_000_000,
        },
    );
    let behind = p.arrive(&late);
    assert!(!p.too_late(&late, behind, race.allowed_lateness_ms));
    p.apply(late.clone(), 1);
    all.push(late);
    all.sort();
    assert_eq!(p.refold(&race, "p"), fold_all(&race, "p", &all));
    // One 200 s late is beyond it; so is one behind the base.
    let old = fix(9_799);
    let behind = p.arrive(&old);
    assert_eq!(behind, 200_000);
    assert!(p.too_late(&old, behind, race.allowed_lateness_ms));
    let base = p.base.as_ref().expect("compacted").0.clone();
    assert!(p.too_late(&base, 0, race.allowed_lateness_ms));
}
