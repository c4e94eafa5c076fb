//! The tournament draw (LCT) through the whole stack on a real Apache Kafka
//! broker:
//! - an organiser and players over the edge's HTTP routes: each rule's
//!   refusal with its status and code, a retried request answered with the
//!   first outcome and not applied twice, and the draw made when the last
//!   player chose; its seed and deal recomputed here from the accepted
//!   events; a spectator on the WebSocket sees every join, choice and the
//!   draw live, each frame valid against the protocol schema; the join
//!   link's QR code;
//! - a `pace pipeline` killed (SIGKILL) halfway through seeded random
//!   events and restarted from its snapshot, and a replay of the same
//!   events with 4 workers on fresh topics: the same tournaments, players
//!   and draws as the sequential reference.
#![allow(clippy::print_stdout)] // the figures are the point

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::tournaments::random_events;
use common::views::{Cluster, fresh_topics, read_all, records_read, wait_committed};
use common::*;
use futures_util::SinkExt;
use pace_pipeline::jobs::tournaments::{TournamentInput, TournamentRow, reference};
use schemas::tournament::{
    FNV_OFFSET, TournamentAction, TournamentChange, TournamentEvent, deal, draw_seed, fnv1a,
};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "tournaments end-to-end secret";

fn token(user: &str) -> String {
    ws_edge::auth::issue(SECRET, user, ws_edge::auth::now_s(), 3600)
}

/// POSTs `body` to `path` on `base` as `user` (anonymous if `None`): the
/// status and the JSON answer.
async fn post(base: &str, path: &str, user: Option<&str>, body: Value) -> (u16, Value) {
    let mut r = reqwest::Client::new().post(format!("{base}{path}"));
    if let Some(u) = user {
        r = r.header("authorization", format!("Bearer {}", token(u)));
    }
    let r = r.json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Asserts a refusal: its status and code.
fn refused(answer: (u16, Value), status: u16, code: &str) {
    assert_eq!(answer.0, status, "{answer:?}");
    assert_eq!(answer.1["code"], code, "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organiser_and_players_over_the_edge_and_a_live_draw() {
    let stack = Stack::start("tournaments", SECRET).await;
    let base = stack.base.clone();
    let url = format!("ws{}/ws", &base[4..]);
    let mut ws = tokio_tungstenite::connect_async(&url).await.unwrap().0;
    let subscribe = json!({"type": "subscribe", "view": "tournament", "id": "cup"});
    ws.send(Message::text(subscribe.to_string())).await.unwrap();
    let f = next_frame(&mut ws).await;
    assert_eq!(
        (&f["type"], &f["code"]),
        (&json!("error"), &json!("unknown_tournament"))
    );
    let at = |action: &str| format!("/api/tournaments/cup/{action}");
    refused(
        post(
            &base,
            &at("join"),
            Some("bob"),
            json!({"display_name": "Bob"}),
        )
        .await,
        404,
        "unknown_tournament",
    );

    // Bad requests never reach Kafka.
    let create = json!({"id": "cup", "name": "Friday cup", "player_limit": 3});
    assert_eq!(
        post(&base, "/api/tournaments", None, create.clone())
            .await
            .0,
        401
    );
    for bad in [
        json!({"id": "cup", "name": "x", "player_limit": 1}),
        json!({"id": "cup", "name": "x", "player_limit": 3, "extra": 1}),
        json!({"id": "a b", "name": "x", "player_limit": 3}),
        json!({"name": "x", "player_limit": 3}),
    ] {
        let (status, answer) = post(&base, "/api/tournaments", Some("ann"), bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {answer}");
    }
    let (status, answer) = post(&base, "/api/tournaments", Some("ann"), create.clone()).await;
    assert_eq!(status, 201, "{answer}");
    refused(
        post(&base, "/api/tournaments", Some("eve"), create).await,
        409,
        "exists",
    );

    // The spectator, now that it exists.
    ws.send(Message::text(subscribe.to_string())).await.unwrap();
    let snapshot = next_frame(&mut ws).await;
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    assert_eq!(snapshot["tournament"]["name"], "Friday cup");
    let mut frames = vec![snapshot.clone()];

    let ok = |answer: (u16, Value)| assert_eq!(answer.0, 200, "{answer:?}");
    for (user, name) in [("bob", "Bob"), ("cy", "Cy"), ("dee", "Dee")] {
        ok(post(
            &base,
            &at("join"),
            Some(user),
            json!({"display_name": name}),
        )
        .await);
    }
    refused(
        post(
            &base,
            &at("join"),
            Some("bob"),
            json!({"display_name": "B"}),
        )
        .await,
        409,
        "already_joined",
    );
    refused(
        post(
            &base,
            &at("join"),
            Some("eve"),
            json!({"display_name": "Eve"}),
        )
        .await,
        409,
        "full",
    );
    ok(post(&base, &at("choose"), Some("bob"), json!({"team": "Ajax"})).await);
    refused(
        post(&base, &at("choose"), Some("cy"), json!({"team": "Ajax"})).await,
        409,
        "team_taken",
    );
    refused(
        post(
            &base,
            &at("choose"),
            Some("eve"),
            json!({"team": "Everton"}),
        )
        .await,
        403,
        "not_a_player",
    );
    // A retry gets the first outcome and is not applied again.
    let choose = json!({"team": "Benfica", "client_msg_id": "cy-1"});
    let first = post(&base, &at("choose"), Some("cy"), choose.clone()).await;
    assert_eq!(first.0, 200, "{first:?}");
    assert_eq!(post(&base, &at("choose"), Some("cy"), choose).await, first);
    ok(post(
        &base,
        &at("rename"),
        Some("ann"),
        json!({"name": "Cup", "version": 1}),
    )
    .await);
    refused(
        post(
            &base,
            &at("rename"),
            Some("ann"),
            json!({"name": "Old", "version": 1}),
        )
        .await,
        409,
        "stale_version",
    );
    refused(
        post(
            &base,
            &at("rename"),
            Some("bob"),
            json!({"name": "Mine", "version": 2}),
        )
        .await,
        403,
        "not_organiser",
    );
    refused(
        post(&base, &at("close"), Some("bob"), json!({})).await,
        403,
        "not_organiser",
    );
    assert_eq!(
        post(
            &base,
            &at("choose"),
            Some("dee"),
            json!({"team": "Benfica", "x": 1})
        )
        .await
        .0,
        400
    );
    // The last choice draws.
    ok(post(&base, &at("choose"), Some("dee"), json!({"team": "Celtic"})).await);
    refused(
        post(&base, &at("choose"), Some("dee"), json!({"team": "Dynamo"})).await,
        409,
        "drawn",
    );

    let view: Value = reqwest::get(format!("{base}/api/tournaments/cup"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["tournament"]["state"], "drawn", "{view}");
    assert_eq!(view["tournament"]["name"], "Cup");
    // Anyone can check the draw: the seed is the digest of the accepted
    // events, in order, and the deal is a fixed function of it.
    let accepted = [
        (
            "ann",
            TournamentAction::Create {
                name: "Friday cup".into(),
                player_limit: 3,
            },
        ),
        (
            "bob",
            TournamentAction::Join {
                display_name: "Bob".into(),
            },
        ),
        (
            "cy",
            TournamentAction::Join {
                display_name: "Cy".into(),
            },
        ),
        (
            "dee",
            TournamentAction::Join {
                display_name: "Dee".into(),
            },
        ),
        (
            "bob",
            TournamentAction::Choose {
                team: "Ajax".into(),
            },
        ),
        (
            "cy",
            TournamentAction::Choose {
                team: "Benfica".into(),
            },
        ),
        (
            "ann",
            TournamentAction::Rename {
                name: "Cup".into(),
                version: 1,
            },
        ),
        (
            "dee",
            TournamentAction::Choose {
                team: "Celtic".into(),
            },
        ),
    ];
    let seed = accepted
        .iter()
        .fold(fnv1a(FNV_OFFSET, b"cup"), |s, (user, action)| {
            let e = TournamentEvent {
                tournament: "cup".into(),
                user: (*user).into(),
                action: action.clone(),
                client_msg_id: None,
                time: schemas::Timestamp(0),
            };
            draw_seed(s, &e)
        });
    assert_eq!(view["draw"]["seed"], format!("{seed:016x}"), "{view}");
    let teams = deal(
        seed,
        ["Ajax", "Benfica", "Celtic"].map(String::from).to_vec(),
    );
    let expected: Vec<Value> = ["bob", "cy", "dee"]
        .iter()
        .zip(&teams)
        .map(|(user, team)| json!({"user": user, "team": team}))
        .collect();
    assert_eq!(view["draw"]["assignments"], json!(expected));

    // The spectator saw every change live, in order, ending with the draw.
    let mut seq = snapshot["seq"].as_u64().unwrap();
    let mut draw = Value::Null;
    while draw.is_null() {
        let f = next_frame(&mut ws).await;
        assert_eq!(f["type"], "delta", "{f}");
        assert_eq!(f["seq"].as_u64(), Some(seq + 1), "{f}");
        seq += 1;
        draw = f["draw"].clone();
        frames.push(f);
    }
    assert_eq!(draw, view["draw"]);
    let outcomes: Vec<&Value> = frames
        .iter()
        .flat_map(|f| f["outcomes"].as_array().into_iter().flatten())
        .collect();
    assert!(
        outcomes
            .iter()
            .any(|o| o["refused"] == "team_taken" && o["user"] == "cy"),
        "{outcomes:?}"
    );
    validate_frames(&frames, "server");

    // The join link as a QR code.
    let qr = reqwest::get(format!("{base}/api/tournaments/cup/qr.svg"))
        .await
        .unwrap();
    assert_eq!(qr.status(), 200);
    assert_eq!(qr.headers()["content-type"], "image/svg+xml");
    let svg = qr.text().await.unwrap();
    assert!(svg.contains("<svg") && svg.len() > 1000, "{svg}");
    let none = reqwest::get(format!("{base}/api/tournaments/nope/qr.svg"))
        .await
        .unwrap();
    assert_eq!(none.status(), 404);
    stack.stop().await;
}

/// Each tournament as the changelog folds it (the edge's own fold):
/// tournament, players by place and draw, without the view's seq.
fn folded(kafka: &ingest::KafkaConfig, ids: &[String]) -> BTreeMap<String, Value> {
    let view = ws_edge::views::tournaments::Tournaments::default();
    for c in read_all::<TournamentChange>(kafka, &kafka.topics.tournaments) {
        view.apply(c, None);
    }
    ids.iter()
        .filter_map(|id| {
            let v = view.get(id)?;
            Some((
                id.clone(),
                json!({"tournament": v["tournament"], "players": v["players"], "draw": v["draw"]}),
            ))
        })
        .collect()
}

/// The same from the sequential reference.
fn expected(events: &[TournamentInput]) -> BTreeMap<String, Value> {
    reference(events)
        .into_iter()
        .filter_map(|(id, rows)| {
            let mut info = None;
            let mut players = Vec::new();
            let mut draw = Value::Null;
            for r in rows {
                match r {
                    TournamentRow::Info(i) => info = Some(serde_json::to_value(&i.0).unwrap()),
                    TournamentRow::Player(p) => players.push(p.0),
                    TournamentRow::Draw(d) => draw = serde_json::to_value(&d.0).unwrap(),
                    TournamentRow::Outcome(_) => {}
                }
            }
            players.sort_by_key(|p| p.place);
            Some((
                id,
                json!({"tournament": info?, "players": players, "draw": draw}),
            ))
        })
        .collect()
}

fn produce(kafka: &ingest::KafkaConfig, events: &[TournamentInput], pace: Duration) {
    let p = ingest::producer::TrackedProducer::new(kafka).unwrap();
    for (id, (_, e)) in events {
        let payload = serde_json::to_vec(&e.0).unwrap();
        p.send(
            &kafka.topics.tournament,
            Some(id.as_bytes()),
            &payload,
            &[],
            0,
        )
        .unwrap();
        std::thread::sleep(pace);
    }
    p.flush(Duration::from_secs(30)).unwrap();
}

/// The snapshots in process data directory `data` that both of its 2
/// workers finished.
fn complete_snapshots(data: &std::path::Path) -> std::collections::BTreeSet<std::path::PathBuf> {
    std::fs::read_dir(data.join("snapshots"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| (0..2).all(|w| p.join(format!("w{w}.done")).exists()))
        .collect()
}

#[test]
fn a_restart_from_a_snapshot_and_a_replay_give_the_reference_draws() {
    let events = random_events(21, 700);
    let want = expected(&events);
    let ids: Vec<String> = want.keys().cloned().collect();
    let draws = want.values().filter(|v| !v["draw"].is_null()).count();
    assert!(draws >= 2, "the input draws ({draws})");
    let (half, more) = (events.len() / 2, events.len() * 3 / 4);

    // Killed past a snapshot, restarted from it: what came between the
    // snapshot and the kill is folded and written again, in other epochs.
    let (prefix, kafka) = fresh_topics("tournaments-restart");
    let mut cluster = Cluster::new(&kafka, &prefix, 1, 2, false);
    cluster.snapshot_every_ms = 3000;
    cluster.start_all();
    produce(&kafka, &events[..half], Duration::from_millis(4));
    wait_committed(&kafka, Duration::from_secs(120));
    // A snapshot taken after the first half was in: it holds all of it.
    let before = complete_snapshots(&cluster.data_dir(0));
    let deadline = Instant::now() + Duration::from_secs(60);
    while complete_snapshots(&cluster.data_dir(0)).is_subset(&before) {
        assert!(
            Instant::now() < deadline,
            "no new complete snapshot in 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    produce(&kafka, &events[half..more], Duration::from_millis(1));
    wait_committed(&kafka, Duration::from_secs(120));
    cluster.kill(0);
    produce(&kafka, &events[more..], Duration::ZERO);
    cluster.start(0);
    wait_committed(&kafka, Duration::from_secs(120));
    let read = records_read(cluster.urls[0].as_ref().unwrap(), |t| {
        t == kafka.topics.tournament
    });
    println!(
        "after the restart: {read} of {} tournament records read",
        events.len()
    );
    assert!(
        read < events.len() as u64,
        "{read} records read after the restart: no snapshot was restored"
    );
    let restarted = folded(&kafka, &ids);
    cluster.stop();
    assert_eq!(restarted, want, "restarted from a snapshot");

    // A replay of the same records with 4 workers.
    let (prefix, kafka) = fresh_topics("tournaments-replay");
    produce(&kafka, &events, Duration::ZERO);
    let mut cluster = Cluster::new(&kafka, &prefix, 1, 4, false);
    cluster.start_all();
    wait_committed(&kafka, Duration::from_secs(120));
    let replayed = folded(&kafka, &ids);
    cluster.stop();
    assert_eq!(replayed, want, "a replay with 4 workers");
}
