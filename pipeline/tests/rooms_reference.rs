//! `room_membership` against plain references: the real #ubuntu IRC log
//! (../shared/data/chat-irc), line by line, and seeded random rooms with
//! joins, leaves, retried posts and connections, with 1 and 4 workers.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use pace_pipeline::jobs::rooms::{RoomEvent, RoomRow, reference, room_membership};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use schemas::{ChatEvent, ChatKind, Packed, Timestamp, Visibility};

type Update = ((String, RoomRow), u64, isize);

/// Runs `rounds` of events through the job; every update, consolidated.
fn run(rounds: &[Vec<RoomEvent>], workers: usize) -> Vec<Update> {
    common::run_rounds(rounds.to_vec(), workers, room_membership)
}

/// The views after each round, from the updates.
fn views_by_round(updates: &[Update], rounds: usize) -> Vec<BTreeSet<(String, RoomRow)>> {
    let mut now = BTreeMap::new();
    let mut out = Vec::new();
    for round in 0..rounds as u64 {
        for (row, _, diff) in updates.iter().filter(|u| u.1 == round) {
            *now.entry(row.clone()).or_insert(0) += diff;
        }
        now.retain(|_, d| *d != 0);
        assert!(
            now.values().all(|d| *d == 1),
            "round {round}: a row held twice"
        );
        out.push(now.keys().cloned().collect());
    }
    out
}

fn flatten(rooms: BTreeMap<String, Vec<RoomRow>>) -> BTreeSet<(String, RoomRow)> {
    rooms
        .into_iter()
        .flat_map(|(room, rows)| rows.into_iter().map(move |r| (room.clone(), r)))
        .collect()
}

fn members(view: &BTreeSet<(String, RoomRow)>) -> BTreeSet<String> {
    view.iter()
        .filter_map(|(_, r)| match r {
            RoomRow::Member(m) => Some(m.user.clone()),
            _ => None,
        })
        .collect()
}

/// The IRC log's membership after each line, computed the plain way from
/// the text: joins add, parts and quits remove, a nick change renames, and
/// whoever speaks is present.
fn irc_reference(text: &str) -> Vec<(BTreeSet<String>, Option<String>)> {
    let mut present = BTreeSet::new();
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut said = None;
        if line.starts_with('[') {
            let nick = &line[line.find('<').unwrap() + 1..line.find("> ").unwrap()];
            present.insert(nick.trim().to_string());
            said = Some(line[line.find("> ").unwrap() + 2..].trim_end().to_string());
        } else if let Some(x) = line.find(" is now known as ") {
            present.remove(line[4..x].trim());
            present.insert(line[x + 17..].trim().to_string());
        } else if line.contains("]  has joined #") {
            let host = line[..line.find("]  has").unwrap()].rfind('[').unwrap();
            present.insert(line[4..host].trim().to_string());
        } else if line.contains("]  has left #") || line.contains("]  has quit") {
            let host = line[..line.find("]  has").unwrap()].rfind('[').unwrap();
            present.remove(line[4..host].trim());
        } else if !line.starts_with("=== mode/") {
            // An emote: its author is present.
            let rest = line[4..].trim_end();
            present.insert(rest.split(' ').next().unwrap().to_string());
            said = Some(format!("* {rest}"));
        }
        out.push((present.clone(), said));
    }
    out
}

#[test]
fn irc_log_membership_after_every_line_and_gapless_message_numbers() {
    let path = common::shared_data().join("chat-irc/ubuntu_irc_2005-07-06_14.raw.txt");
    let text =
        std::fs::read_to_string(&path).expect("../shared/data/chat-irc beside the repository");
    let events = ingest::datasets::irc::read(&path, "ubuntu").unwrap().chat;
    let expected = irc_reference(&text);
    assert_eq!(expected.len(), 1500);
    // One round per log line (a nick change is two events of one line).
    let mut rounds: Vec<Vec<RoomEvent>> = Vec::new();
    let mut order = 0;
    let lines = text.lines().filter(|l| !l.trim().is_empty());
    let mut pending = events.into_iter().peekable();
    for line in lines {
        let n = if line.contains(" is now known as ") {
            2
        } else if line.starts_with("=== mode/") {
            0
        } else {
            1
        };
        let mut round = Vec::new();
        for _ in 0..n {
            order += 1;
            round.push((
                "ubuntu".to_string(),
                (order, Packed(pending.next().expect("an event per line"))),
            ));
        }
        rounds.push(round);
    }
    assert!(pending.peek().is_none());
    let updates = run(&rounds, 2);
    let views = views_by_round(&updates, rounds.len());
    let mut messages = Vec::new();
    for (i, ((present, said), view)) in expected.iter().zip(&views).enumerate() {
        assert_eq!(&members(view), present, "after line {}", i + 1);
        messages.extend(said.clone());
    }
    // Messages: seq 1..N with no gap, in log order.
    let last = views.last().unwrap();
    let log: Vec<(u64, String)> = last
        .iter()
        .filter_map(|(_, r)| match r {
            RoomRow::Message(m) => Some((m.seq, m.text.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(log.len(), messages.len());
    assert!(log.len() > 1_200);
    for (i, ((seq, text), want)) in log.iter().zip(&messages).enumerate() {
        assert_eq!(*seq, i as u64 + 1);
        assert_eq!(text, want);
    }
    // And the job equals its own reference on the whole log.
    let all: Vec<RoomEvent> = rounds.into_iter().flatten().collect();
    assert_eq!(last, &flatten(reference(&all)));
}

fn random_rounds(seed: u64) -> Vec<Vec<RoomEvent>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let users = ["ann", "bob", "cy", "dee", "eve"];
    let mut rounds: Vec<Vec<RoomEvent>> = vec![Vec::new(); 8];
    let dm = schemas::direct_room("ann", "bob");
    for room in ["r1", "r2", "r3", "r4", dm.as_str()] {
        let direct = room == dm;
        let mut round = 0;
        let mut offset = rng.random_range(0..100);
        // Mostly a second apart, now and then half a minute: leases of
        // the two edges lapse, and are renewed.
        let mut time = 1_780_000_000_000i64;
        for i in 0..120 {
            time += if rng.random_bool(0.05) { 30_000 } else { 1_000 };
            let user = users[rng.random_range(0..users.len())];
            // r1 and r2 are never created (public, as IRC channels); ann
            // creates r3 invite-only and r4 public, but may not be first.
            // Ann and Bob's conversation: made by either, maybe spoken in
            // (by anyone) before.
            let create =
                (matches!(room, "r3" | "r4") || direct) && (i == 0 || rng.random_range(0..40) == 0);
            let user = if create && direct {
                ["ann", "bob"][rng.random_range(0..2)]
            } else {
                user
            };
            let kind = match rng.random_range(0..14) {
                _ if create => ChatKind::Create,
                0 | 1 => ChatKind::Join,
                2 => ChatKind::Leave,
                3 | 4 => ChatKind::Connect,
                5 => ChatKind::Disconnect,
                6 => ChatKind::Invite,
                7 => ChatKind::Read,
                8 => ChatKind::Lease,
                _ => ChatKind::Message,
            };
            // Two edges (and connections through none, as before edges
            // were named); a lease names some users, with one or two
            // connections each.
            let edge = match kind {
                ChatKind::Lease => Some(["e1", "e2"][rng.random_range(0..2)].to_owned()),
                ChatKind::Connect | ChatKind::Disconnect => {
                    Some(["e1", "e2", ""][rng.random_range(0..3)].to_owned())
                        .filter(|e| !e.is_empty())
                }
                _ => None,
            };
            let present = (kind == ChatKind::Lease).then(|| {
                let mut present = std::collections::BTreeMap::new();
                for u in users {
                    if rng.random_bool(0.3) {
                        present.insert(u.to_owned(), rng.random_range(1..3));
                    }
                }
                present
            });
            let message = kind == ChatKind::Message;
            let event = ChatEvent {
                room: room.into(),
                user: if create && i == 0 && !direct {
                    "ann".into()
                } else {
                    user.into()
                },
                kind,
                text: message.then(|| format!("hello {i}")),
                // Some posts carry a client id, and some of those are retried.
                client_msg_id: (message && rng.random_bool(0.5))
                    .then(|| format!("c{}", rng.random_range(0..30))),
                visibility: create.then_some(match room {
                    "r3" => Visibility::InviteOnly,
                    _ if direct => Visibility::Direct,
                    _ => Visibility::Public,
                }),
                invitee: match kind {
                    ChatKind::Invite => Some(users[rng.random_range(0..users.len())].into()),
                    ChatKind::Create if direct => {
                        Some(if user == "ann" { "bob" } else { "ann" }.into())
                    }
                    _ => None,
                },
                // Read markers anywhere, also past the log and backwards.
                seq: (kind == ChatKind::Read).then(|| rng.random_range(0..70)),
                edge,
                present,
                time: Timestamp(time),
            };
            offset += rng.random_range(1..4);
            // A room's events stay in order (one partition), across rounds.
            round = (round + usize::from(rng.random_bool(0.1))).min(7);
            rounds[round].push((room.into(), (offset, Packed(event))));
        }
    }
    rounds
}

#[test]
fn rooms_equal_sequential_reference_one_and_four_workers() {
    for seed in [1, 2, 3] {
        let rounds = random_rounds(seed);
        let mut prefix = Vec::new();
        let expected: Vec<BTreeSet<(String, RoomRow)>> = rounds
            .iter()
            .map(|r| {
                prefix.extend(r.iter().cloned());
                flatten(reference(&prefix))
            })
            .collect();
        let last = expected.last().unwrap();
        assert!(
            last.iter()
                .any(|(_, r)| matches!(r, RoomRow::Member(m) if m.online)),
            "someone online"
        );
        assert!(
            last.iter()
                .any(|(_, r)| matches!(r, RoomRow::Member(m) if m.read_seq > 0)),
            "read markers"
        );
        assert!(
            last.iter()
                .filter(|(_, r)| matches!(r, RoomRow::Message(_)))
                .count()
                > 100
        );
        // The conversation: Ann and Bob alone, talking.
        let dm = schemas::direct_room("ann", "bob");
        let in_dm = |pick: fn(&RoomRow) -> Option<String>| -> BTreeSet<String> {
            (last.iter())
                .filter(|(room, _)| *room == dm)
                .filter_map(|(_, r)| pick(r))
                .collect()
        };
        let members = in_dm(|r| match r {
            RoomRow::Member(m) => Some(m.user.clone()),
            _ => None,
        });
        let speakers = in_dm(|r| match r {
            RoomRow::Message(m) => Some(m.user.clone()),
            _ => None,
        });
        let two: BTreeSet<String> = ["ann".to_owned(), "bob".to_owned()].into();
        assert!(members.is_subset(&two), "seed {seed}: {members:?}");
        assert!(
            !speakers.is_empty() && speakers.is_subset(&two),
            "seed {seed}: the two speak, and nobody else: {speakers:?}"
        );
        for workers in [1, 4] {
            let views = views_by_round(&run(&rounds, workers), rounds.len());
            assert_eq!(views, expected, "seed {seed}, {workers} workers");
        }
    }
}

#[test]
fn a_retried_post_is_one_message() {
    let post = |offset: i64, id: &str| {
        (
            "r".to_string(),
            (
                offset,
                Packed(ChatEvent {
                    room: "r".into(),
                    user: "ann".into(),
                    kind: ChatKind::Message,
                    text: Some("hi".into()),
                    client_msg_id: Some(id.into()),
                    visibility: None,
                    invitee: None,
                    seq: None,
                    edge: None,
                    present: None,
                    time: Timestamp(1_780_000_000_000 + offset),
                }),
            ),
        )
    };
    let updates = run(
        &[
            vec![post(1, "a"), post(2, "a")],
            vec![post(3, "a"), post(4, "b")],
        ],
        1,
    );
    let seqs: Vec<u64> = updates
        .iter()
        .filter_map(|((_, r), _, _)| match r {
            RoomRow::Message(m) => Some(m.seq),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, [1, 2]);
}
