//! `race_standings` on real recorded races (../shared/data), through the
//! dataflow with 2 workers:
//! - F1 2020: the split position pace gives each driver for each lap equals
//!   the `position` column of `lap_times.csv`, for all 18,400 rows.
//! - SailGP Auckland 2025: finishing orders agree with the official results,
//!   and the order in which pace has boats complete each leg agrees with the
//!   tracking system's leg changes for at least 95% of boat pairs.
//! - Boston Marathon 2015, chip-timed: every finisher's place equals the
//!   official `Overall`, and the position at every mat equals the order of
//!   that mat's net times, both within same-second ties.
//!
//! `cargo test -p pace-pipeline --test recorded_races -- --nocapture` prints
//! the measured figures.
#![allow(clippy::print_stdout)] // the figures are the point

mod common;

use common::Fed;
use std::collections::BTreeMap;

use std::collections::BTreeSet;

use ingest::datasets::{Dataset, boston, f1, sailgp};
use pace_pipeline::jobs::standings::{
    Definition, Obs, Observation, SplitRow, Standing, ViewRow, crossing, definition, entry, fix,
    fold_all,
};

type Views = (
    BTreeMap<String, Vec<Standing>>,
    BTreeMap<String, Vec<SplitRow>>,
);

/// Runs the dataset through the dataflow in a few rounds; the final views.
fn run(dataset: &Dataset, workers: usize) -> Views {
    let mut observations: Vec<Observation> = dataset.gps.iter().cloned().map(fix).collect();
    observations.extend(dataset.timing.iter().cloned().map(crossing));
    let definitions: Vec<Definition> = dataset
        .definitions
        .iter()
        .enumerate()
        .map(|(i, d)| definition(d, i as i64))
        .collect();
    // The definitions and entrants first, then the observations in time
    // order, in four rounds.
    let entrants =
        (dataset.entrants.iter().enumerate()).map(|(i, e)| Fed::Entrant(entry(e, i as i64)));
    let mut rounds: Vec<Vec<Fed>> = vec![
        definitions
            .into_iter()
            .map(Fed::Definition)
            .chain(entrants)
            .collect(),
    ];
    let chunk = observations.len().div_ceil(4);
    rounds.extend(
        observations
            .chunks(chunk)
            .map(|part| part.iter().cloned().map(Fed::Observation).collect()),
    );
    let mut updates: Vec<_> = common::run_rounds_by(
        rounds,
        workers,
        common::standings_reader,
        common::standings_views,
    )
    .into_iter()
    .map(|(d, _, r)| (d, 0u64, r))
    .collect();
    differential_dataflow::consolidation::consolidate_updates(&mut updates);
    let (mut standings, mut splits): Views = Default::default();
    let mut ranks: BTreeMap<(String, String), u32> = BTreeMap::new();
    for ((race, row), _, diff) in updates {
        assert_eq!(diff, 1, "final views hold each row once");
        match row {
            ViewRow::Standing(s) => standings.entry(race).or_default().push(*s),
            ViewRow::Rank(p) => assert!(ranks.insert((race, p.participant), p.rank).is_none()),
            ViewRow::Split(s) => splits.entry(race).or_default().push(s),
            ViewRow::Leader(_) => {}
        }
    }
    // Every row has one rank; a race's ranks are 1..=n.
    for (race, rows) in standings.iter_mut() {
        let rank = |s: &Standing| ranks[&(race.clone(), s.participant.clone())];
        rows.sort_by_key(rank);
        let got: Vec<u32> = rows.iter().map(rank).collect();
        assert_eq!(got, (1..=rows.len() as u32).collect::<Vec<_>>(), "{race}");
    }
    assert_eq!(ranks.len(), standings.values().map(Vec::len).sum::<usize>());
    (standings, splits)
}

#[test]
fn f1_2020_split_positions_equal_the_official_lap_positions() {
    let (dataset, laps) = f1::read(&common::shared_data().join("f1-laps-2020"))
        .expect("../shared/data/f1-laps-2020 beside the repository");
    assert_eq!(laps.len(), 18_400);
    let (standings, splits) = run(&dataset, 2);
    let position: BTreeMap<(&str, &str, u32), u32> = splits
        .iter()
        .flat_map(|(race, rows)| {
            rows.iter()
                .map(move |s| ((race.as_str(), s.participant.as_str(), s.split), s.position))
        })
        .collect();
    let wrong: Vec<_> = laps
        .iter()
        .filter(|l| position.get(&(l.race.as_str(), l.driver.as_str(), l.lap)) != Some(&l.position))
        .collect();
    println!(
        "F1 2020: {} of {} lap positions agree",
        laps.len() - wrong.len(),
        laps.len()
    );
    assert!(
        wrong.is_empty(),
        "{} disagree, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    // Every race ends with finishers, ranked by laps then time; the winner first.
    for (race, rows) in &standings {
        assert_eq!(rows[0].status, schemas::Status::Finished, "{race}");
        assert_eq!(rows[0].gap_ms, Some(0), "{race}");
    }
}

#[test]
fn sailgp_finishing_orders_and_leg_times_agree_with_the_official_ones() {
    let (dataset, tracker) = sailgp::read(&common::shared_data().join("sailgp-auckland-2025"))
        .expect("../shared/data/sailgp-auckland-2025 beside the repository");
    assert_eq!(dataset.definitions.len(), 4);
    let (standings, splits) = run(&dataset, 2);

    let finishers = |race: &str| -> Vec<String> {
        standings[race]
            .iter()
            .filter(|s| s.status == schemas::Status::Finished)
            .map(|s| s.participant.clone())
            .collect()
    };
    for race in ["25011905", "25011906", "25011907", "25011908"] {
        println!(
            "SailGP {race}: {:?}",
            standings[race]
                .iter()
                .enumerate()
                .map(|(i, s)| (i + 1, s.participant.as_str(), s.status.name(), s.leg))
                .collect::<Vec<_>>()
        );
    }
    // The official results (../shared/data/README.md).
    assert_eq!(finishers("25011908")[..3], ["AUS", "ESP", "GBR"]);
    assert_eq!(finishers("25011906")[0], "DEN");
    assert_eq!(finishers("25011907")[..2], ["DEN", "NZL"]);
    // Australia's race 7 ended on leg 3; Canada never started.
    let aus7 = standings["25011907"]
        .iter()
        .find(|s| s.participant == "AUS")
        .unwrap();
    assert_eq!((aus7.status, aus7.leg), (schemas::Status::Retired, Some(3)));
    for race in ["25011905", "25011906", "25011907"] {
        let can = standings[race]
            .iter()
            .find(|s| s.participant == "CAN")
            .unwrap();
        assert_eq!(can.status, schemas::Status::NotStarted, "{race}");
    }

    // Leg order: for each race and leg k (1..=6), every pair of boats the
    // tracker moved to leg k + 1 at different seconds.
    let pace_leg: BTreeMap<(&str, &str, u32), i64> = splits
        .iter()
        .flat_map(|(race, rows)| {
            rows.iter()
                .map(move |s| ((race.as_str(), s.participant.as_str(), s.split), s.time_ms))
        })
        .collect();
    let (mut pairs, mut agree, mut offsets) = (0, 0, Vec::new());
    for race in ["25011905", "25011906", "25011907", "25011908"] {
        for leg in 1..=6u32 {
            let moved: Vec<(&str, i64)> = tracker
                .iter()
                .filter(|((r, _), _)| r == race)
                .filter_map(|((_, boat), changes)| {
                    let t = changes.iter().find(|(l, _)| *l == leg + 1)?.1;
                    Some((boat.as_str(), t.0))
                })
                .collect();
            for (boat, t) in &moved {
                if let Some(p) = pace_leg.get(&(race, *boat, leg)) {
                    offsets.push(t - p);
                }
            }
            for (i, (a, ta)) in moved.iter().enumerate() {
                for (b, tb) in &moved[i + 1..] {
                    if ta == tb {
                        continue;
                    }
                    pairs += 1;
                    let (pa, pb) = (
                        pace_leg.get(&(race, *a, leg)),
                        pace_leg.get(&(race, *b, leg)),
                    );
                    if let (Some(pa), Some(pb)) = (pa, pb)
                        && (ta < tb) == (pa < pb)
                    {
                        agree += 1;
                    }
                }
            }
        }
    }
    offsets.sort();
    let median = offsets[offsets.len() / 2];
    let share = agree as f64 / pairs as f64;
    println!(
        "SailGP leg order: {agree} of {pairs} boat pairs agree ({:.1}%); median leg-change offset (tracker - pace) {:.1} s over {} leg times",
        share * 100.0,
        median as f64 / 1000.0,
        offsets.len()
    );
    assert!(share >= 0.95, "{agree}/{pairs}");
}

/// `got` and `want` agree within ties: for every group of equal `key`s, the
/// set of `got` values is the set of `want` values. Returns the disagreeing
/// groups.
fn tie_groups<K: Ord + Clone, V: Ord + Copy + std::fmt::Debug>(
    rows: impl IntoIterator<Item = (K, V, V)>,
) -> Vec<(K, BTreeSet<V>, BTreeSet<V>)> {
    let mut groups: BTreeMap<K, (BTreeSet<V>, BTreeSet<V>)> = BTreeMap::new();
    for (k, got, want) in rows {
        let g = groups.entry(k).or_default();
        g.0.insert(got);
        g.1.insert(want);
    }
    groups
        .into_iter()
        .filter(|(_, (got, want))| got != want)
        .map(|(k, (got, want))| (k, got, want))
        .collect()
}

/// A finisher's group and official place in it, and pace's position in it.
type GroupPlace = (
    fn(&boston::Finisher) -> String,
    fn(&boston::Finisher) -> u32,
    fn(&SplitRow) -> Option<u32>,
);

/// A same-second group that disagrees: (group, time), pace's positions,
/// the official places.
type Disagreeing = ((String, Option<i64>), BTreeSet<u32>, BTreeSet<u32>);

/// The same-second groups of `timed` (per group of `by`) whose positions
/// at the finish (`at_finish`) are not their official places in the group.
fn group_places_wrong(
    timed: &[&boston::Finisher],
    at_finish: &BTreeMap<&str, &SplitRow>,
    (group, official, got): GroupPlace,
) -> Vec<Disagreeing> {
    let mut places: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for f in timed {
        places.entry(group(f)).or_default().push(official(f));
    }
    places.values_mut().for_each(|p| p.sort_unstable());
    tie_groups(timed.iter().map(|f| {
        let g = group(f);
        let want = places[&g].partition_point(|o| *o < official(f)) as u32 + 1;
        let position = at_finish.get(f.bib.as_str()).and_then(|s| got(s));
        ((g, f.official_ms), position.unwrap_or(0), want)
    }))
}

#[test]
fn boston_2015_places_and_mat_positions_equal_the_official_order() {
    let (dataset, finishers) =
        boston::read(&common::shared_data().join("boston-marathon-2015/marathon_results_2015.csv"))
            .expect("../shared/data/boston-marathon-2015 beside the repository");
    assert_eq!(finishers.len(), 26_598);
    let (standings, splits) = run(&dataset, 2);
    let rows = &standings[boston::RACE];
    assert_eq!(rows.len(), finishers.len());
    let place: BTreeMap<&str, u32> = (rows.iter().enumerate())
        .map(|(i, r)| (r.participant.as_str(), i as u32 + 1))
        .collect();
    // One finisher has no official time: read at every mat but the finish,
    // they are not finished, and come after everyone who is.
    let timed: Vec<_> = finishers
        .iter()
        .filter(|f| f.official_ms.is_some())
        .collect();
    assert_eq!(timed.len(), finishers.len() - 1);
    let finished = rows
        .iter()
        .filter(|r| r.status == schemas::Status::Finished)
        .count();
    assert_eq!(finished, timed.len());
    // Places: runners with the same official second may come in any order;
    // the official places close up over the one without a time.
    let mut overall: Vec<u32> = timed.iter().map(|f| f.overall).collect();
    overall.sort_unstable();
    let wrong = tie_groups(timed.iter().map(|f| {
        let want = overall.partition_point(|o| *o < f.overall) as u32 + 1;
        (f.official_ms, place[f.bib.as_str()], want)
    }));
    println!(
        "Boston 2015: {} finishers; {} same-second groups disagree with the official places",
        finishers.len(),
        wrong.len()
    );
    assert!(wrong.is_empty(), "e.g. {:?}", &wrong[..wrong.len().min(3)]);
    // Places by gender and by division (the entrants' category): the
    // finish's positions within the group, against the official ones.
    let finish = boston::MATS.len() as u32 + 1;
    let at_finish: BTreeMap<&str, &SplitRow> = (splits[boston::RACE].iter())
        .filter(|s| s.split == finish)
        .map(|s| (s.participant.as_str(), s))
        .collect();
    assert_eq!(at_finish.len(), timed.len());
    let checks: [(&str, GroupPlace); 2] = [
        (
            "Gender",
            (
                |f| f.gender.clone(),
                |f| f.gender_place,
                |s| s.gender_position,
            ),
        ),
        (
            "Division",
            (
                boston::Finisher::division,
                |f| f.division_place,
                |s| s.category_position,
            ),
        ),
    ];
    for (name, check) in checks {
        let wrong = group_places_wrong(&timed, &at_finish, check);
        println!(
            "Boston 2015: {} same-second groups disagree with the official {name} places",
            wrong.len()
        );
        assert!(
            wrong.is_empty(),
            "{name}: e.g. {:?}",
            &wrong[..wrong.len().min(3)]
        );
    }
    // Each mat's positions: the order of its net times, within ties.
    let position: BTreeMap<(&str, u32), u32> = (splits[boston::RACE].iter())
        .map(|s| ((s.participant.as_str(), s.split), s.position))
        .collect();
    let mut checked = 0;
    for (m, _) in boston::MATS.iter().enumerate() {
        let split = m as u32 + 1;
        let mut times: Vec<i64> = finishers.iter().filter_map(|f| f.splits[m]).collect();
        times.sort_unstable();
        let rows: Vec<_> = (finishers.iter())
            .filter_map(|f| {
                let t = f.splits[m]?;
                let want = times.partition_point(|x| *x < t) as u32 + 1;
                let got = position.get(&(f.bib.as_str(), split)).copied().unwrap_or(0);
                Some((t, got, want))
            })
            .collect();
        checked += rows.len();
        // A tie group's positions are the `want`s from its first: compare
        // the group's lowest position and its size.
        let mut groups: BTreeMap<i64, (BTreeSet<u32>, u32, usize)> = BTreeMap::new();
        for (t, got, want) in rows {
            let g = groups.entry(t).or_insert((BTreeSet::new(), want, 0));
            g.0.insert(got);
            g.2 += 1;
        }
        let wrong: Vec<_> = (groups.iter())
            .filter(|(_, (got, first, n))| {
                *got != (*first..*first + *n as u32).collect::<BTreeSet<_>>()
            })
            .collect();
        assert!(
            wrong.is_empty(),
            "mat {}: e.g. {:?}",
            boston::MATS[m].0,
            &wrong[..wrong.len().min(3)]
        );
    }
    // The finish is the last split: its positions are the places.
    println!("Boston 2015: {checked} mat positions agree with the order of net times");
    // Missed mats are missing splits, not invented reads.
    let missed = finishers.iter().filter(|f| f.splits[0].is_none()).count();
    let read_5k = (splits[boston::RACE].iter())
        .filter(|s| s.split == 1)
        .count();
    assert_eq!(read_5k, finishers.len() - missed);
    assert!(
        missed >= 150,
        "the data misses about 152 runners at 5K: {missed}"
    );
    // How good the projected finish is at 30K (the latest stretch's pace held):
    // the fold's `eta` against the official time.
    let race = pace_pipeline::jobs::standings::geo::Race::compile(&dataset.definitions[0]);
    let gun = dataset.definitions[0].start.0;
    let at_30k = boston::MATS.iter().position(|m| m.1 == "30k").unwrap();
    let mut errors_s: Vec<f64> = (timed.iter())
        .filter_map(|f| {
            f.splits[at_30k]?;
            let mut obs = vec![(
                gun,
                Obs::Cross {
                    line: "start".into(),
                },
            )];
            for (m, t) in boston::MATS.iter().zip(&f.splits).take(at_30k + 1) {
                obs.extend(t.map(|t| (gun + t, Obs::Cross { line: m.1.into() })));
            }
            let (p, _) = fold_all(&race, &f.bib, &obs);
            Some((p.eta_ms? - gun - f.official_ms?).abs() as f64 / 1000.0)
        })
        .collect();
    assert!(errors_s.len() > 26_000, "{}", errors_s.len());
    errors_s.sort_by(f64::total_cmp);
    println!(
        "Boston 2015: projected finish at 30K (the 25K-30K pace held): median absolute error {:.0} s, p90 {:.0} s, over {} finishers",
        errors_s[errors_s.len() / 2],
        errors_s[errors_s.len() * 9 / 10],
        errors_s.len()
    );
}
