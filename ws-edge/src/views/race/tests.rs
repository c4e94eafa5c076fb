//! Tests of the race view (`mod.rs`): snapshots and deltas in sequence,
//! resuming, participant views, the leader and the distance gaps, and
//! windows (`window.rs`) against a plain reference on seeded random changes.

use super::*;
use crate::views::race::window::Window;
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
            wave: None,
            ..Default::default()
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
        gender: None,
        category: None,
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
    assert_eq!(v.races.read().unwrap()["r"].order.rank("b"), None);
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

/// SplitMix64: the seeded randomness of the window property test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The race as a plain model: the order (rank − 1 → participant), each
/// one's distance, their splits and the leader.
#[derive(Default)]
struct Model {
    order: Vec<String>,
    distance: HashMap<String, f64>,
    splits: BTreeMap<(String, u32), u32>,
    next: usize,
}

impl Model {
    /// One random change of the race, as the changelog would carry it (the
    /// rank moves in a random order: the edge must not depend on it).
    fn step(&mut self, seq: u64, rng: &mut Rng) -> StandingsChange {
        let before: HashMap<String, usize> = (self.order.iter().cloned())
            .enumerate()
            .map(|(i, p)| (p, i))
            .collect();
        let leader = self.order.first().cloned();
        let lead_distance = leader.as_ref().map(|l| self.distance[l]);
        let mut c = change(seq, vec![], vec![]);
        let mut upserted = BTreeSet::new();
        let pick = if self.order.len() < 3 {
            0
        } else {
            rng.below(10)
        };
        match pick {
            0 | 1 if self.order.len() < 80 => {
                let p = format!("p{}", self.next);
                self.next += 1;
                let at = rng.below(self.order.len() + 1);
                self.order.insert(at, p.clone());
                upserted.insert(p);
            }
            2 if self.order.len() > 5 => {
                let p = self.order.remove(rng.below(self.order.len()));
                self.distance.remove(&p);
                self.splits.retain(|(q, _), _| *q != p);
                c.removes.push(p);
            }
            3 => {
                let p = self.order[rng.below(self.order.len())].clone();
                let split = 1 + self.splits.keys().filter(|(q, _)| *q == p).count() as u32;
                let position = 1 + rng.below(self.order.len()) as u32;
                self.splits.insert((p.clone(), split), position);
                c.splits.push(Split {
                    race: "r".into(),
                    participant: p.clone(),
                    split,
                    time: Timestamp(1_780_000_000_000 + seq as i64),
                    position,
                    gender_position: None,
                    category_position: None,
                });
                upserted.insert(p);
            }
            _ => {
                for _ in 0..1 + rng.below(4) {
                    let p = self.order.remove(rng.below(self.order.len()));
                    let at = rng.below(self.order.len() + 1);
                    self.order.insert(at, p.clone());
                    upserted.insert(p);
                }
            }
        }
        for p in &upserted {
            self.distance
                .insert(p.clone(), (rng.below(100_000) as f64) / 10.0);
        }
        c.upserts = upserted.iter().map(|p| bare(p, self.distance[p])).collect();
        for (i, p) in self.order.iter().enumerate() {
            if before.get(p) != Some(&i) {
                c.ranks.push(schemas::RankChange {
                    participant: p.clone(),
                    rank: i as u32 + 1,
                });
            }
        }
        for i in (1..c.ranks.len()).rev() {
            c.ranks.swap(i, rng.below(i + 1));
        }
        let now = self.order.first().cloned();
        let now_distance = now.as_ref().map(|l| self.distance[l]);
        if (now.clone(), now_distance) != (leader, lead_distance)
            && let Some(participant) = now
        {
            c.leader = Some(Leader {
                participant,
                distance_m: now_distance,
            });
        }
        c
    }

    /// What a client of `window` should hold: the rows inside (participant
    /// → rank, distance), their splits, and the span.
    fn expect(&self, window: &Window) -> WindowState {
        let total = self.order.len() as u64;
        let (from, to) = match window {
            Window::Ranks { from, to } => (u64::from(*from), u64::from(*to).min(total)),
            Window::Around { participant, k } => {
                match self.order.iter().position(|p| p == participant) {
                    Some(i) => {
                        let r = i as u64 + 1;
                        (
                            r.saturating_sub(u64::from(*k)).max(1),
                            (r + u64::from(*k)).min(total),
                        )
                    }
                    None => (1, 0),
                }
            }
        };
        let rows: BTreeMap<String, (u64, f64)> = (from..=to)
            .map(|r| {
                let p = &self.order[r as usize - 1];
                (p.clone(), (r, self.distance[p]))
            })
            .collect();
        let splits = (self.splits.iter())
            .filter(|((p, _), _)| rows.contains_key(p))
            .map(|((p, s), pos)| ((p.clone(), u64::from(*s)), u64::from(*pos)))
            .collect();
        WindowState {
            span: (from, to, total),
            rows,
            splits,
        }
    }
}

/// What a window's frames leave a client holding.
#[derive(Debug, Default, PartialEq)]
struct WindowState {
    span: (u64, u64, u64),
    rows: BTreeMap<String, (u64, f64)>,
    splits: BTreeMap<(String, u64), u64>,
}

impl WindowState {
    /// Applies one window frame, as a client does.
    fn apply(&mut self, frame: &Frame) {
        let f: serde_json::Value = serde_json::from_str(frame).unwrap();
        let w = &f["window"];
        let span = |k: &str| w[k].as_u64().expect("every window frame has its span");
        self.span = (span("from"), span("to"), span("total"));
        let list = |k: &str| {
            f.get(k)
                .and_then(|v| v.as_array())
                .cloned()
                .unwrap_or_default()
        };
        let participant = |v: &serde_json::Value| v["participant"].as_str().unwrap().to_owned();
        if f["type"] == "snapshot" {
            self.rows.clear();
            self.splits.clear();
        }
        for p in list("removes") {
            let p = p.as_str().unwrap();
            self.rows.remove(p);
            self.splits.retain(|(q, _), _| q != p);
        }
        for k in list("split_removes") {
            self.splits
                .remove(&(participant(&k), k["split"].as_u64().unwrap()));
        }
        for r in list("rows").into_iter().chain(list("upserts")) {
            let rank = r["rank"].as_u64().unwrap();
            self.rows
                .insert(participant(&r), (rank, r["distance_m"].as_f64().unwrap()));
        }
        for s in list("splits") {
            let key = (participant(&s), s["split"].as_u64().unwrap());
            self.splits.insert(key, s["position"].as_u64().unwrap());
        }
    }
}

/// Windows on seeded random changes (moves, passes, arrivals, retirements,
/// splits), each change's ranks in a random order: after every change a
/// client of each window holds exactly what the plain model puts inside it,
/// whether it subscribed at the start, midway, or fell behind and got a
/// snapshot; and a change away from a window sends it nothing.
#[test]
fn windows_hold_exactly_the_ranks_inside_them() {
    let windows = [
        Window::Ranks { from: 1, to: 10 },
        Window::Ranks { from: 15, to: 25 },
        Window::Around {
            participant: "p7".into(),
            k: 3,
        },
        Window::Around {
            participant: "nobody".into(),
            k: 2,
        },
    ];
    for seed in [1, 2, 3, 4] {
        let mut rng = Rng(seed);
        let (v, mut model) = (Races::default(), Model::default());
        v.apply_race(def());
        let mut clients: Vec<(Window, Subscribed, WindowState)> = Vec::new();
        let (mut quiet, mut shown) = (0, BTreeSet::new());
        for seq in 1..=400u64 {
            if seq == 1 || seq == 200 {
                for w in &windows {
                    let s = v.subscribe_window("r", w).unwrap();
                    let mut state = WindowState::default();
                    state.apply(&first(&s)[0]);
                    assert_eq!(
                        state,
                        model.expect(w),
                        "seed {seed}: {w:?}'s snapshot at {seq}"
                    );
                    clients.push((w.clone(), s, state));
                }
            }
            v.apply_standings(model.step(seq, &mut rng));
            for (w, s, state) in &mut clients {
                let rx = s.changes.as_mut().unwrap();
                let mut got = 0;
                while let Ok(c) = rx.try_recv() {
                    state.apply(&c.frame);
                    got += 1;
                }
                quiet += usize::from(got == 0);
                assert_eq!(
                    *state,
                    model.expect(w),
                    "seed {seed}: {w:?} after change {seq}"
                );
                if !state.rows.is_empty() {
                    shown.insert(format!("{w:?}"));
                }
            }
        }
        assert!(
            quiet > 100,
            "seed {seed}: changes away from a window send it nothing ({quiet})"
        );
        assert_eq!(
            shown.len(),
            3,
            "seed {seed}: every window but nobody's showed rows: {shown:?}"
        );
        // A fresh snapshot (for a client that fell behind) is the model too.
        for w in &windows {
            let mut state = WindowState::default();
            state.apply(&v.window_snapshot("r", w).unwrap().2);
            assert_eq!(state, model.expect(w));
        }
    }
}

#[test]
fn windows_nobody_watches_go_and_a_race_serves_a_bounded_number() {
    let v = Races::default();
    let one = |i: u32| Window::Ranks { from: i, to: i };
    assert_eq!(
        v.subscribe_window("r", &one(1)).err().unwrap().0,
        ErrorCode::UnknownRace
    );
    v.apply_race(def());
    let max = crate::views::race::window::MAX_WINDOWS as u32;
    let held: Vec<Subscribed> = (1..=max)
        .map(|i| v.subscribe_window("r", &one(i)).unwrap())
        .collect();
    let refused = v.subscribe_window("r", &one(max + 1)).err().unwrap();
    assert_eq!(refused.0, ErrorCode::TooManySubscriptions);
    assert!(
        v.subscribe_window("r", &one(1)).is_ok(),
        "a window already served is shared"
    );
    drop(held);
    assert!(
        v.subscribe_window("r", &one(max + 1)).is_ok(),
        "unwatched windows made room"
    );
    v.apply_standings(change(1, vec![row("a", 1, 1.0)], vec![]));
    assert_eq!(
        v.races.read().unwrap()["r"].windows.0.len(),
        0,
        "nobody watches any now"
    );
}
