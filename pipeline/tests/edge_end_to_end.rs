//! The edge over the real broker: participant devices stream GPS points
//! through `WS /ws/track` of two separate `pace edge` processes (each point
//! acknowledged with its offset; bad ones refused and dead-lettered), the
//! pipeline makes standings of them, and both edges, and the in-process
//! one, serve byte-identical snapshots of the race. Every frame the test
//! receives is valid against `ws-edge/protocol.schema.json`. Behind a
//! trusted proxy, each client its `X-Forwarded-For` names has budgets of
//! its own. A race subscriber away for longer than an edge holds deltas
//! resumes with exactly the changes it missed, read back from the
//! changelog.

#![allow(clippy::print_stdout)] // what the test saw is worth seeing
mod common;

use std::process::{Child, Command};
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "edge end-to-end secret";
const RACE: &str = r#"{"id":"track","name":"Tracked","start":"2026-05-01T08:00:00Z",
  "kind":{"type":"course","polyline":[{"lat":59.0,"lon":18.0},{"lat":59.1,"lon":18.0}]}}"#;

/// A `pace edge` process on the stack's topics; the child and its base URL.
fn pace_edge(kafka: &ingest::KafkaConfig) -> (Child, String) {
    common::pace_edge(kafka, Some(SECRET))
}

fn token(user: &str) -> String {
    ws_edge::auth::issue(SECRET, user, ws_edge::auth::now_s(), 3600)
}

fn point(p: &str, second: i64) -> Value {
    json!({"race": "track", "participant": p,
           "time": 1_777_622_400_000i64 + second * 1000,
           "lat": 59.0 + second as f64 * 0.0001 * (1.0 + p.len() as f64 / 10.0), "lon": 18.0})
}

/// Every text frame until `n` have come, or the socket closes.
async fn frames(ws: &mut Ws, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    while out.len() < n {
        out.push(next_frame(ws).await);
    }
    out
}

/// A race snapshot from `base` as it is sent: the frame's text.
async fn snapshot_text(base: &str) -> String {
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(base, "/ws/races/track"))
        .await
        .unwrap();
    loop {
        if let Some(Ok(Message::Text(t))) = ws.next().await {
            return t.to_string();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_through_two_edges_and_identical_views() {
    let stack = Stack::start("edges", SECRET).await;
    let (mut edge1, base1) = pace_edge(&stack.kafka);
    let (mut edge2, base2) = pace_edge(&stack.kafka);
    let producer = ingest::producer::TrackedProducer::new(&stack.kafka).unwrap();
    producer
        .send(
            &stack.kafka.topics.races,
            Some(b"track"),
            RACE.as_bytes(),
            &[],
            0,
        )
        .unwrap();
    producer.flush(Duration::from_secs(30)).unwrap();

    // Three devices, on two edges, 40 points each, pipelined.
    let devices = [("ann", &base1), ("bo", &base2), ("cyrille", &base1)];
    let mut device_frames = Vec::new();
    for (who, base) in devices {
        let url = ws_url(base, &format!("/ws/track?token={}", token(who)));
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        for s in 0..40 {
            let m = json!({"type": "point", "ref": s, "point": point(who, s)});
            ws.send(Message::text(m.to_string())).await.unwrap();
        }
        let acks = frames(&mut ws, 40).await;
        for (s, a) in acks.iter().enumerate() {
            assert_eq!((&a["type"], &a["ref"]), (&json!("ack"), &json!(s)), "{a}");
        }
        let offsets: Vec<i64> = acks.iter().map(|a| a["offset"].as_i64().unwrap()).collect();
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "acked in order, one partition per participant"
        );
        device_frames.extend(acks);
        if who == "ann" {
            // Refused: an impossible latitude, someone else's point, not JSON, no token.
            let bad = [
                json!({"type": "point", "ref": 100, "point": {"race": "track", "participant": "ann", "time": 1_777_622_400_000i64, "lat": 200.0, "lon": 18.0}}).to_string(),
                json!({"type": "point", "ref": 101, "point": point("bo", 99)}).to_string(),
                "{not json".to_owned(),
            ];
            for b in &bad {
                ws.send(Message::text(b.clone())).await.unwrap();
            }
            let refused = frames(&mut ws, 3).await;
            let codes: Vec<(&str, Value)> = refused
                .iter()
                .map(|f| (f["code"].as_str().unwrap(), f["ref"].clone()))
                .collect();
            assert_eq!(
                codes,
                [
                    ("invalid", json!(100)),
                    ("forbidden", json!(101)),
                    ("bad_frame", Value::Null)
                ]
            );
            assert!(
                refused[0]["message"].as_str().unwrap().contains("lat"),
                "{}",
                refused[0]
            );
            device_frames.extend(refused);
        }
        ws.close(None).await.unwrap();
    }
    let (mut anonymous, _) = tokio_tungstenite::connect_async(ws_url(&base2, "/ws/track"))
        .await
        .unwrap();
    let f = next_frame(&mut anonymous).await;
    assert_eq!(f["code"], "unauthorized");
    device_frames.push(f);
    validate_frames(&device_frames, "device_server");

    // The points are in pace.gps (120), the refused ones in pace.dlq (3).
    let gps = stack.read_topic(&stack.kafka.topics.gps);
    assert_eq!(gps.len(), 120);
    let dlq: Vec<String> = {
        let mut c = ingest::source::StaticConsumer::new(
            &stack.kafka,
            "pace-test-dlq",
            &stack.kafka.topics.dlq,
            0,
            1,
        )
        .unwrap();
        let mut out = Vec::new();
        for _ in 0..50 {
            for r in c.poll(1024) {
                out.push(String::from_utf8_lossy(&r.payload).into_owned());
            }
            if out.len() >= 3 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        out
    };
    assert_eq!(dlq.len(), 3, "{dlq:?}");
    assert!(dlq.iter().any(|d| d.contains("200")) && dlq.iter().any(|d| d == "{not json"));

    // The standings: three racing, the fastest first, on every edge alike.
    let http = reqwest::Client::new();
    let bases = [stack.base.clone(), base1.clone(), base2.clone()];
    let settled = |base: String| {
        let http = http.clone();
        async move {
            eventually(
                "three participants at 39 s",
                Duration::from_secs(60),
                || async {
                    let r = http
                        .get(format!("{base}/api/races/track/standings"))
                        .send()
                        .await
                        .ok()?;
                    let seq = r.headers().get("x-pace-seq")?.to_str().ok()?.to_owned();
                    let rows: Vec<Value> = r.json().await.ok()?;
                    let last = schemas::Timestamp(1_777_622_439_000).to_string();
                    let done = rows.len() == 3 && rows.iter().all(|r| r["last_seen"] == *last);
                    done.then_some((seq, rows))
                },
            )
            .await
        }
    };
    let mut views = Vec::new();
    for base in &bases {
        views.push(settled(base.clone()).await);
    }
    let names: Vec<&str> = views[0]
        .1
        .iter()
        .map(|r| r["participant"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cyrille", "ann", "bo"]);
    assert!(views[0].1[0]["position"]["lat"].as_f64().unwrap() > 59.0);
    assert_eq!(
        views[0], views[1],
        "edge 1 serves what the in-process edge serves"
    );
    assert_eq!(
        views[1], views[2],
        "the two pace edge processes serve the same"
    );
    let snapshots = [
        snapshot_text(&bases[0]).await,
        snapshot_text(&bases[1]).await,
        snapshot_text(&bases[2]).await,
    ];
    assert_eq!(snapshots[0], snapshots[1]);
    assert_eq!(snapshots[1], snapshots[2]);
    println!("identical snapshots, {} bytes each", snapshots[0].len());

    // A spectator on one edge, following a participant, pinging, then
    // watching a window of the race and moving it; what it sends and what
    // it gets match the schema.
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(&base2, "/ws"))
        .await
        .unwrap();
    let sent = [
        json!({"type": "subscribe", "view": "race", "id": "track"}),
        json!({"type": "subscribe", "view": "participant", "id": "track", "participant": "ann"}),
        json!({"type": "subscribe", "view": "task", "id": "nothing"}),
        json!({"type": "ping", "nonce": 1}),
        json!({"type": "unsubscribe", "view": "race", "id": "track"}),
        json!({"type": "subscribe", "view": "room", "id": "nowhere"}),
        json!({"type": "subscribe", "view": "race", "id": "track", "window": {"top": 2}}),
        json!({"type": "subscribe", "view": "race", "id": "track", "window": {"around": "bo", "k": 1}}),
    ];
    for f in &sent {
        ws.send(Message::text(f.to_string())).await.unwrap();
    }
    validate_frames(&sent, "client");
    let mut spectator = frames(&mut ws, 8).await;
    let windows: Vec<(&Value, usize)> = spectator[6..]
        .iter()
        .map(|f| (&f["window"], f["rows"].as_array().unwrap().len()))
        .collect();
    assert_eq!(
        windows,
        [
            (&json!({"from": 1, "to": 2, "total": 3}), 2),
            (&json!({"from": 2, "to": 3, "total": 3}), 2)
        ],
        "the top 2, then bo (third) ± 1"
    );
    spectator.push(serde_json::from_str(&snapshots[0]).unwrap());
    validate_frames(&spectator, "server");

    for child in [&mut edge1, &mut edge2] {
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(child.wait().unwrap().success());
    }
    stack.stop().await;
}

/// Behind a trusted proxy (`--trusted-proxy`), each client's address is
/// the one its `X-Forwarded-For` names: two clients of one proxy have
/// budgets of their own. An edge that does not trust the proxy believes
/// no such header: both are the proxy's address, and share one budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxys_clients_have_budgets_of_their_own() {
    let (_, kafka) = tokio::task::block_in_place(|| common::views::fresh_topics("proxy"));
    let edge = |trust: bool| {
        let trusted: &[&str] = if trust {
            &["--trusted-proxy", "127.0.0.0/8"]
        } else {
            &[]
        };
        let (child, base) = common::pace_edge_with(&kafka, None, trusted);
        (Killed(child), base)
    };
    let http = reqwest::Client::new();
    // A register with a bad body costs the address's account budget, and
    // reaches nothing else: 400, then 429 once the budget is spent.
    let register = |base: String, client: &'static str| {
        let http = http.clone();
        async move {
            let r = http
                .post(format!("{base}/api/users"))
                .header("x-forwarded-for", client)
                .body("{}")
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }
    };
    for (trust, other_client) in [(true, 400), (false, 429)] {
        let (_edge, base) = edge(trust);
        let mut spent = false;
        for _ in 0..200 {
            match register(base.clone(), "198.51.100.1").await {
                429 => {
                    spent = true;
                    break;
                }
                status => assert_eq!(status, 400),
            }
        }
        assert!(spent, "the first client's budget was never spent");
        assert_eq!(
            register(base.clone(), "198.51.100.2").await,
            other_client,
            "trusting the proxy: {trust}"
        );
    }
}

/// The standings changes of a made-up race of 30 runners, each change one
/// runner moving on and passing whoever it passes: the runner's row, and
/// the new ranks of those passed (rank-only, as the pipeline sends them).
struct Made {
    distance: Vec<f64>,
}

impl Made {
    fn rank_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.distance.len()).collect();
        order.sort_by(|&a, &b| {
            self.distance[b]
                .total_cmp(&self.distance[a])
                .then(a.cmp(&b))
        });
        order
    }

    fn change(&mut self, seq: u64) -> Value {
        let before = self.rank_order();
        let mover = ((seq * 7919) % 30) as usize;
        self.distance[mover] += 10.0 + ((seq * 31) % 97) as f64;
        let after = self.rank_order();
        let rank_of = |order: &[usize], p: usize| order.iter().position(|&q| q == p).unwrap() + 1;
        let row = |p: usize| {
            json!({"race": "hist", "rank": rank_of(&after, p), "participant": format!("p{p:02}"),
                   "name": "", "distance_m": self.distance[p],
                   "last_seen": 1_777_622_400_000i64 + seq as i64 * 1000, "status": "racing"})
        };
        let ranks: Vec<Value> = (0..30)
            .filter(|&p| p != mover && (seq == 1 || rank_of(&before, p) != rank_of(&after, p)))
            .map(|p| json!({"participant": format!("p{p:02}"), "rank": rank_of(&after, p)}))
            .collect();
        let mut upserts = vec![row(mover)];
        if seq == 1 {
            upserts = (0..30).map(row).collect();
        }
        json!({"race": "hist", "seq": seq, "ranks": if seq == 1 { vec![] } else { ranks },
               "upserts": upserts, "removes": []})
    }
}

/// A client's copy of a race: rows by participant.
fn apply(rows: &mut std::collections::BTreeMap<String, Value>, frame: &Value) {
    if frame["type"] == "snapshot" {
        rows.clear();
        for r in frame["rows"].as_array().unwrap() {
            rows.insert(r["participant"].as_str().unwrap().to_owned(), r.clone());
        }
        return;
    }
    for r in frame["upserts"].as_array().unwrap() {
        rows.insert(r["participant"].as_str().unwrap().to_owned(), r.clone());
    }
    for p in frame["removes"].as_array().unwrap() {
        rows.remove(p.as_str().unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_race_subscriber_away_longer_than_the_edge_holds_gets_exactly_what_it_missed() {
    let kafka =
        ingest::KafkaConfig::new(brokers()).with_topic_prefix(&unique_prefix("race-history"));
    ingest::admin::ensure_topics(&kafka, 2).await.unwrap();
    let producer = ingest::producer::TrackedProducer::new(&kafka).unwrap();
    let send = |topic: &str, v: &Value| {
        let payload = serde_json::to_vec(v).unwrap();
        producer
            .send(topic, Some(b"hist".as_slice()), &payload, &[], 0)
            .unwrap();
    };
    send(
        &kafka.topics.races,
        &json!({"id": "hist", "name": "History", "start": "2026-05-01T08:00:00Z",
                "kind": {"type": "course", "polyline": [{"lat": 59.0, "lon": 18.0}, {"lat": 59.1, "lon": 18.0}]}}),
    );
    let mut made = Made {
        distance: vec![0.0; 30],
    };
    for seq in 1..=10 {
        send(&kafka.topics.standings, &made.change(seq));
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let (edge, base) = pace_edge(&kafka);
    let _edge = Killed(edge);
    let http = reqwest::Client::new();
    let seq_is = |want: u64| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let r = http
                .get(format!("{base}/api/races/hist/standings"))
                .send()
                .await
                .ok()?;
            let seq: u64 = r.headers().get("x-pace-seq")?.to_str().ok()?.parse().ok()?;
            (seq == want).then_some(())
        }
    };
    eventually("the edge at seq 10", Duration::from_secs(60), || seq_is(10)).await;

    // A spectator's copy at seq 10; it goes away.
    let mut rows = std::collections::BTreeMap::new();
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(&base, "/ws/races/hist"))
        .await
        .unwrap();
    let first = next_frame(&mut ws).await;
    assert_eq!(
        (first["type"].as_str(), first["seq"].as_u64()),
        (Some("snapshot"), Some(10))
    );
    apply(&mut rows, &first);
    drop(ws);

    // 1,490 changes while it is away: more than the 1,024 the edge holds.
    let last = 1500;
    for seq in 11..=last {
        send(&kafka.topics.standings, &made.change(seq));
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    eventually("the edge at the last seq", Duration::from_secs(60), || {
        seq_is(last)
    })
    .await;

    // It comes back: a `resumed` frame, then every delta from 11 on, in
    // order, each once; applied, they give the race as it is.
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(&base, "/ws/races/hist?since=10"))
        .await
        .unwrap();
    let resumed = next_frame(&mut ws).await;
    assert_eq!(
        resumed,
        json!({"type": "resumed", "view": "race", "id": "hist", "since": 10, "seq": last})
    );
    for seq in 11..=last {
        let f = next_frame(&mut ws).await;
        assert_eq!(
            (f["type"].as_str(), f["seq"].as_u64()),
            (Some("delta"), Some(seq)),
            "{f}"
        );
        apply(&mut rows, &f);
    }
    let (mut fresh, _) = tokio_tungstenite::connect_async(ws_url(&base, "/ws/races/hist"))
        .await
        .unwrap();
    let mut now = std::collections::BTreeMap::new();
    apply(&mut now, &next_frame(&mut fresh).await);
    assert_eq!(rows, now, "the resumed copy is the race as it is");
    validate_frames(&[resumed], "server");
}
