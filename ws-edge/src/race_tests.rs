//! Tests of the race view (`race.rs`): snapshots and deltas in sequence,
//! resuming, participant views, the leader and the distance gaps.

use super::*;
use schemas::{Participant, RaceKind, Status, Timestamp};

fn def() -> RaceDefinition {
    RaceDefinition {
        id: "r".into(),
        name: "R".into(),
        start: Timestamp(1_780_000_000_000),
        kind: RaceKind::TimingLines {
            lines: vec![schemas::TimingLine {
                id: "l".into(),
                name: String::new(),
                ends: None,
            }],
        },
        laps: 1,
        cutoff: None,
        participants: vec![Participant {
            id: "a".into(),
            name: "Ann".into(),
        }],
        rules: Default::default(),
    }
}

fn row(p: &str, rank: u32, d: f64) -> StandingRow {
    StandingRow {
        race: "r".into(),
        rank: Some(rank),
        participant: p.into(),
        name: p.into(),
        distance_m: d,
        laps: None,
        leg: None,
        gap_s: None,
        speed_mps: None,
        last_lap_s: None,
        last_seen: Timestamp(1_780_000_000_000),
        status: Status::Racing,
        eta: None,
        position: None,
    }
}

fn change(seq: u64, upserts: Vec<StandingRow>, removes: Vec<&str>) -> StandingsChange {
    StandingsChange {
        race: "r".into(),
        seq,
        ranks: vec![],
        upserts,
        removes: removes.into_iter().map(String::from).collect(),
        splits: vec![],
        split_removes: vec![],
        leader: None,
    }
}

fn first(s: &Subscribed) -> Vec<Frame> {
    match &s.first {
        First::Snapshot(f) => vec![f.clone()],
        First::Resumed(frames) => frames.clone(),
    }
}

fn kinds(frames: &[Frame]) -> Vec<(String, u64)> {
    frames
        .iter()
        .map(|f| {
            let v: serde_json::Value = serde_json::from_str(f).unwrap();
            (
                v["type"].as_str().unwrap().to_owned(),
                v["seq"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn kind(frame: &Frame) -> (String, u64) {
    kinds(std::slice::from_ref(frame)).remove(0)
}

#[test]
fn snapshot_then_deltas_in_sequence() {
    let v = Races::default();
    assert!(v.subscribe_race("r", None).is_none(), "undefined race");
    v.apply_race(def());
    let mut s = v.subscribe_race("r", None).unwrap();
    assert!(
        first(&s)[0].starts_with(r#"{"type":"snapshot","view":"race","id":"r","seq":0"#),
        "{}",
        first(&s)[0]
    );
    v.apply_standings(change(1, vec![row("a", 1, 5.0), row("b", 2, 3.0)], vec![]));
    v.apply_standings(change(2, vec![row("b", 1, 9.0), row("a", 2, 5.0)], vec![]));
    let d1 = s.changes.as_mut().unwrap().try_recv().unwrap();
    assert!(
        d1.frame
            .starts_with(r#"{"type":"delta","view":"race","id":"r","seq":1"#),
        "{}",
        d1.frame
    );
    assert!(
        d1.frame.contains(r#""name":"Ann""#),
        "names come from the definition"
    );
    assert_eq!(
        kind(&s.changes.as_mut().unwrap().try_recv().unwrap().frame),
        ("delta".into(), 2)
    );
    let (seq, rows) = v.standings("r").unwrap();
    assert_eq!(seq, 2);
    assert_eq!(
        rows.iter()
            .map(|r| r.row.participant.as_str())
            .collect::<Vec<_>>(),
        ["b", "a"]
    );
    v.apply_standings(change(3, vec![], vec!["a"]));
    assert_eq!(v.standings("r").unwrap().1.len(), 1);
    assert_eq!(v.races()[0].participants, 1);
}

/// A changelog row without its rank, as the pipeline writes it.
fn bare(p: &str, d: f64) -> StandingRow {
    StandingRow {
        rank: None,
        ..row(p, 0, d)
    }
}

fn ranks(list: &[(&str, u32)]) -> Vec<schemas::RankChange> {
    list.iter()
        .map(|(p, r)| schemas::RankChange {
            participant: (*p).into(),
            rank: *r,
        })
        .collect()
}

fn frame_rows(frame: &Frame) -> Vec<(String, u64, f64)> {
    let v: serde_json::Value = serde_json::from_str(frame).unwrap();
    let rows = v.get("upserts").or_else(|| v.get("rows")).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["participant"].as_str().unwrap().to_owned(),
                r["rank"].as_u64().expect("every served row has its rank"),
                r["distance_m"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn ranks_travel_apart_and_clients_get_whole_rows() {
    let v = Races::default();
    v.apply_race(def());
    let mut s = v.subscribe_race("r", None).unwrap();
    // A big change in two pieces: the ranks first, then the rows.
    let mut c = change(1, vec![], vec![]);
    c.ranks = ranks(&[("a", 1), ("b", 2), ("c", 3)]);
    v.apply_standings(c);
    v.apply_standings(change(
        2,
        vec![bare("a", 9.0), bare("b", 8.0), bare("c", 7.0)],
        vec![],
    ));
    let rx = s.changes.as_mut().unwrap();
    assert!(
        frame_rows(&rx.try_recv().unwrap().frame).is_empty(),
        "no row yet"
    );
    assert_eq!(
        frame_rows(&rx.try_recv().unwrap().frame),
        [
            ("a".into(), 1, 9.0),
            ("b".into(), 2, 8.0),
            ("c".into(), 3, 7.0)
        ]
    );
    // c passes b: c's row and two ranks in the changelog; clients get both
    // rows whole, b's unchanged but for its rank.
    let mut c = change(3, vec![bare("c", 8.5)], vec![]);
    c.ranks = ranks(&[("c", 2), ("b", 3)]);
    v.apply_standings(c);
    assert_eq!(
        frame_rows(&rx.try_recv().unwrap().frame),
        [("c".into(), 2, 8.5), ("b".into(), 3, 8.0)]
    );
    // An upsert keeps the rank it had.
    v.apply_standings(change(4, vec![bare("a", 9.5)], vec![]));
    assert_eq!(
        frame_rows(&rx.try_recv().unwrap().frame),
        [("a".into(), 1, 9.5)]
    );
    let (_, rows) = v.standings("r").unwrap();
    let order: Vec<(&str, Option<u32>)> = rows
        .iter()
        .map(|r| (r.row.participant.as_str(), r.row.rank))
        .collect();
    assert_eq!(order, [("a", Some(1)), ("c", Some(2)), ("b", Some(3))]);
    let snapshot = v.race_snapshot("r").unwrap().2;
    assert_eq!(
        frame_rows(&snapshot),
        [
            ("a".into(), 1, 9.5),
            ("c".into(), 2, 8.5),
            ("b".into(), 3, 8.0)
        ]
    );
    // A removal takes the rank with the row: a rank is never left behind.
    v.apply_standings(change(5, vec![], vec!["b"]));
    assert_eq!(v.standings("r").unwrap().1.len(), 2);
    assert!(!v.races.read().unwrap()["r"].ranks.contains_key("b"));
}

#[test]
fn the_leader_gives_the_distance_gaps_and_travels_in_the_frames() {
    let v = Races::default();
    v.apply_race(def());
    let mut s = v.subscribe_race("r", None).unwrap();
    let mut c = change(1, vec![row("a", 1, 10.0), row("b", 2, 7.5)], vec![]);
    c.leader = Some(Leader {
        participant: "a".into(),
        distance_m: Some(10.0),
    });
    v.apply_standings(c);
    // The leader steps on: one record, no row of b's.
    let mut c = change(2, vec![row("a", 1, 12.25)], vec![]);
    c.leader = Some(Leader {
        participant: "a".into(),
        distance_m: Some(12.25),
    });
    v.apply_standings(c);
    let gaps: Vec<(String, Option<f64>)> = v
        .standings("r")
        .unwrap()
        .1
        .into_iter()
        .map(|r| (r.row.participant, r.gap_m))
        .collect();
    assert_eq!(
        gaps,
        [("a".to_owned(), Some(0.0)), ("b".to_owned(), Some(4.75))]
    );
    let frame = |f: &Frame| serde_json::from_str::<serde_json::Value>(f).unwrap();
    let changes = s.changes.as_mut().unwrap();
    let d1 = frame(&changes.try_recv().unwrap().frame);
    let d2 = frame(&changes.try_recv().unwrap().frame);
    assert_eq!(d1["leader"]["distance_m"], 10.0);
    assert_eq!(d2["leader"]["distance_m"], 12.25);
    assert_eq!(d2["upserts"].as_array().unwrap().len(), 1);
    let snap = frame(&v.race_snapshot("r").unwrap().2);
    assert_eq!(snap["leader"]["participant"], "a");
    let p = frame(&first(&v.subscribe_participant("r", "b").unwrap())[0]);
    assert_eq!(p["leader"]["distance_m"], 12.25);
}

#[test]
fn a_client_resumes_with_exactly_what_it_missed_or_a_snapshot() {
    let v = Races::default();
    v.apply_race(def());
    for seq in 1..=5 {
        v.apply_standings(change(seq, vec![row("a", 1, seq as f64)], vec![]));
    }
    let resume = |since| kinds(&first(&v.subscribe_race("r", Some(since)).unwrap()));
    let d = |s: u64| ("delta".to_owned(), s);
    assert_eq!(resume(2), [("resumed".into(), 5), d(3), d(4), d(5)]);
    assert_eq!(resume(5), [("resumed".to_owned(), 5)]);
    assert_eq!(resume(0)[1..], [d(1), d(2), d(3), d(4), d(5)]);
    // From the future (a pipeline that restarted): a snapshot.
    assert_eq!(resume(9), [("snapshot".to_owned(), 5)]);
    // Past the history: a snapshot.
    for seq in 6..=(HISTORY as u64 + 10) {
        v.apply_standings(change(seq, vec![row("a", 1, seq as f64)], vec![]));
    }
    let last = HISTORY as u64 + 10;
    assert_eq!(resume(3), [("snapshot".to_owned(), last)]);
    assert_eq!(resume(10).len(), HISTORY + 1);
    // A jump starts the history again.
    v.apply_standings(change(1, vec![row("a", 1, 1.0)], vec![]));
    assert_eq!(resume(last), [("snapshot".to_owned(), 1)]);
    assert_eq!(resume(1), [("resumed".to_owned(), 1)]);
}

#[test]
fn a_participant_view_gets_only_changes_that_touch_them() {
    let v = Races::default();
    v.apply_race(def());
    v.apply_standings(change(1, vec![row("a", 1, 5.0), row("b", 2, 3.0)], vec![]));
    let mut s = v.subscribe_participant("r", "a").unwrap();
    let snap: serde_json::Value = serde_json::from_str(&first(&s)[0]).unwrap();
    assert_eq!(
        (
            &snap["type"],
            &snap["participant"],
            &snap["row"]["name"],
            &snap["seq"]
        ),
        (&"snapshot".into(), &"a".into(), &"Ann".into(), &1.into())
    );
    v.apply_standings(change(2, vec![row("b", 2, 4.0)], vec![]));
    assert!(
        s.changes.as_mut().unwrap().try_recv().is_err(),
        "b's change is not a's"
    );
    v.apply_standings(change(3, vec![], vec!["a"]));
    let f: serde_json::Value =
        serde_json::from_str(&s.changes.as_mut().unwrap().try_recv().unwrap().frame).unwrap();
    assert_eq!(
        (&f["type"], &f["seq"], &f["row"]),
        (&"delta".into(), &3.into(), &serde_json::Value::Null)
    );
    drop(s);
    v.apply_standings(change(4, vec![row("a", 1, 9.0)], vec![]));
    assert!(
        v.races.read().unwrap()["r"].participants.is_empty(),
        "unfollowed channels go"
    );
}

#[test]
fn channels_of_unfollowed_participants_do_not_pile_up() {
    let v = Races::default();
    v.apply_race(def());
    for i in 0..5_000 {
        drop(v.subscribe_participant("r", &format!("p{i}")).unwrap());
    }
    let held = v.races.read().unwrap()["r"].participants.len();
    assert!(held <= PARTICIPANTS_PRUNE, "{held} channels held");
}

#[test]
fn a_restarted_pipeline_resets_and_resends_a_snapshot() {
    let v = Races::default();
    v.apply_race(def());
    v.apply_standings(change(1, vec![row("a", 1, 5.0), row("b", 2, 3.0)], vec![]));
    let mut s = v.subscribe_race("r", None).unwrap();
    v.apply_standings(change(1, vec![row("a", 1, 1.0)], vec![]));
    let f = s.changes.as_mut().unwrap().try_recv().unwrap();
    assert!(
        f.frame
            .starts_with(r#"{"type":"snapshot","view":"race","id":"r","seq":1"#),
        "{}",
        f.frame
    );
    assert!(f.version > s.version);
    assert_eq!(v.standings("r").unwrap().1.len(), 1);
}
