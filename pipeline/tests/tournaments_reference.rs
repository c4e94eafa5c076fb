//! `tournaments` against its sequential reference: seeded random
//! tournaments with creates (some twice), joins past the limit, choices of
//! taken teams, renames on stale versions, closes by whoever, and retried
//! requests, delivered over rounds, with 1 and 4 workers; then the rules one
//! by one, and a draw that survives a replay and a snapshot.

mod common;

use std::collections::BTreeMap;

use common::tournaments::{event, random_events};
use pace_pipeline::jobs::tournaments::{
    Tournament, TournamentInput, TournamentRow, reference, tournaments,
};
use schemas::tournament::{Refusal, TournamentAction, TournamentEvent};

/// Every row of the view after all rounds, with how many times it is held.
fn run(
    rounds: &[Vec<TournamentInput>],
    workers: usize,
) -> BTreeMap<(String, TournamentRow), isize> {
    let mut out = BTreeMap::new();
    for (row, _, diff) in common::run_rounds(rounds.to_vec(), workers, tournaments) {
        *out.entry(row).or_insert(0) += diff;
    }
    out.retain(|_, d| *d != 0);
    out
}

fn counted(
    reference: BTreeMap<String, Vec<TournamentRow>>,
) -> BTreeMap<(String, TournamentRow), isize> {
    let mut out = BTreeMap::new();
    for (id, rows) in reference {
        for r in rows {
            *out.entry((id.clone(), r)).or_insert(0) += 1;
        }
    }
    out
}

fn rounds_of(events: &[TournamentInput], rounds: usize) -> Vec<Vec<TournamentInput>> {
    let mut out = vec![Vec::new(); rounds];
    for (i, e) in events.iter().enumerate() {
        out[i * rounds / events.len()].push(e.clone());
    }
    out
}

#[test]
fn tournaments_equal_the_sequential_reference_one_and_four_workers() {
    for seed in [1, 2, 3] {
        let events = random_events(seed, 600);
        let expected = counted(reference(&events));
        let draws = expected
            .keys()
            .filter(|(_, r)| matches!(r, TournamentRow::Draw(_)))
            .count();
        let refusals = expected
            .keys()
            .filter(|(_, r)| matches!(r, TournamentRow::Outcome(o) if o.refused.is_some()))
            .count();
        assert!(draws >= 2, "seed {seed}: the input draws ({draws})");
        assert!(
            refusals >= 20,
            "seed {seed}: the input is refused too ({refusals})"
        );
        for (workers, rounds) in [(1, 1), (1, 7), (4, 7), (4, 30)] {
            assert_eq!(
                run(&rounds_of(&events, rounds), workers),
                expected,
                "seed {seed}, {workers} workers, {rounds} rounds"
            );
        }
    }
}

fn refused(t: &mut Tournament, e: TournamentEvent) -> Option<Refusal> {
    t.apply("cup", &e).refused
}

#[test]
fn the_rules_one_by_one() {
    let mut t = Tournament::default();
    let join = |u: &str| {
        event(
            "cup",
            u,
            TournamentAction::Join {
                display_name: u.into(),
            },
            None,
        )
    };
    let choose = |u: &str, team: &str| {
        event(
            "cup",
            u,
            TournamentAction::Choose { team: team.into() },
            None,
        )
    };
    let rename = |u: &str, version: u64| {
        event(
            "cup",
            u,
            TournamentAction::Rename {
                name: "Final".into(),
                version,
            },
            None,
        )
    };
    assert_eq!(
        refused(&mut t, join("ann")),
        Some(Refusal::UnknownTournament)
    );
    let create = event(
        "cup",
        "org",
        TournamentAction::Create {
            name: "Friday".into(),
            player_limit: 3,
        },
        None,
    );
    assert_eq!(refused(&mut t, create.clone()), None);
    assert_eq!(refused(&mut t, create), Some(Refusal::Exists));
    assert_eq!(
        refused(&mut t, choose("ann", "Ajax")),
        Some(Refusal::NotAPlayer)
    );
    for u in ["ann", "bob", "cy"] {
        assert_eq!(refused(&mut t, join(u)), None);
    }
    assert_eq!(refused(&mut t, join("ann")), Some(Refusal::AlreadyJoined));
    assert_eq!(refused(&mut t, join("dee")), Some(Refusal::Full));
    assert_eq!(refused(&mut t, choose("ann", "Ajax")), None);
    assert_eq!(
        refused(&mut t, choose("bob", "Ajax")),
        Some(Refusal::TeamTaken),
        "a team is chosen once per tournament"
    );
    assert_eq!(
        refused(&mut t, choose("ann", "Ajax")),
        None,
        "choosing one's own again"
    );
    // Renames carry the version they were based on.
    assert_eq!(
        refused(&mut t, rename("ann", 1)),
        Some(Refusal::NotOrganiser)
    );
    assert_eq!(refused(&mut t, rename("org", 1)), None);
    assert_eq!(
        refused(&mut t, rename("org", 1)),
        Some(Refusal::StaleVersion)
    );
    assert_eq!(refused(&mut t, rename("org", 2)), None);
    // A change of mind frees the team.
    assert_eq!(refused(&mut t, choose("ann", "Benfica")), None);
    assert_eq!(refused(&mut t, choose("bob", "Ajax")), None);
    let no_draw = |t: &Tournament| !t.rows().iter().any(|r| matches!(r, TournamentRow::Draw(_)));
    assert!(no_draw(&t), "cy has not chosen");
    assert_eq!(refused(&mut t, choose("cy", "Celtic")), None);
    let rows = t.rows();
    let Some(TournamentRow::Draw(draw)) = rows.iter().find(|r| matches!(r, TournamentRow::Draw(_)))
    else {
        panic!("the last choice draws: {rows:?}");
    };
    let mut got: Vec<&str> = draw.assignments.iter().map(|a| a.team.as_str()).collect();
    got.sort_unstable();
    assert_eq!(
        got,
        ["Ajax", "Benfica", "Celtic"],
        "the chosen teams, dealt"
    );
    assert_eq!(
        draw.assignments
            .iter()
            .map(|a| a.user.as_str())
            .collect::<Vec<_>>(),
        ["ann", "bob", "cy"],
        "in join order"
    );
    assert_eq!(
        refused(&mut t, choose("cy", "Dynamo")),
        Some(Refusal::Drawn)
    );
    let close = event("cup", "org", TournamentAction::Close {}, None);
    assert_eq!(refused(&mut t, close), Some(Refusal::Drawn));
    // A retry gets its first outcome, and changes nothing.
    let mut u = Tournament::default();
    let mut with_id = |e: TournamentEvent, id: &str| {
        let mut e = e;
        e.client_msg_id = Some(id.into());
        u.apply("cup", &e)
    };
    let first = with_id(join("ann"), "j1");
    assert_eq!(first.refused, Some(Refusal::UnknownTournament));
    let create = event(
        "cup",
        "ann",
        TournamentAction::Create {
            name: "Mine".into(),
            player_limit: 2,
        },
        None,
    );
    with_id(create, "c1");
    assert_eq!(
        with_id(join("ann"), "j1"),
        first,
        "the retry's outcome is the first one"
    );
    assert_eq!(with_id(join("ann"), "j2").refused, None);
}

#[test]
fn the_draw_is_the_same_after_a_replay_and_after_a_snapshot() {
    let events = random_events(9, 800);
    let draws = |rows: &BTreeMap<(String, TournamentRow), isize>| -> Vec<(String, TournamentRow)> {
        rows.keys()
            .filter(|(_, r)| matches!(r, TournamentRow::Draw(_)))
            .cloned()
            .collect()
    };
    let once = run(&rounds_of(&events, 5), 2);
    assert!(!draws(&once).is_empty());
    assert_eq!(
        draws(&run(&rounds_of(&events, 13), 4)),
        draws(&once),
        "a replay"
    );
    // Each tournament's state goes through a snapshot (bincode, as the
    // job's checkpoint writes it) halfway; the rest then gives the same.
    let mut by_id: BTreeMap<String, Vec<&TournamentEvent>> = BTreeMap::new();
    for (id, (_, e)) in &events {
        by_id.entry(id.clone()).or_default().push(e);
    }
    for (id, list) in by_id {
        let (mut straight, mut halves) = (Tournament::default(), Tournament::default());
        let mid = list.len() / 2;
        for e in &list[..mid] {
            straight.apply(&id, e);
            halves.apply(&id, e);
        }
        let bytes = bincode::serialize(&halves).unwrap();
        let mut restored: Tournament = bincode::deserialize(&bytes).unwrap();
        for e in &list[mid..] {
            assert_eq!(straight.apply(&id, e), restored.apply(&id, e), "{id}");
        }
        assert_eq!(straight.rows(), restored.rows(), "{id}");
    }
}
