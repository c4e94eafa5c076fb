//! The edge's fan-out, over real sockets: 1,000 spectators of one race get
//! every change in order while one stalled spectator neither slows them nor
//! grows the edge's memory, and ends with a snapshot equal to the live view;
//! resuming with `since`; the connection limit, origins, request ids and
//! graceful shutdown (windows: `windows.rs`; the harness: `common/`).
//!
//! The views are fed directly (no Kafka): this is the edge alone.
//! Input (posts) would go to a broker that does not exist, and none is made.
#![allow(clippy::print_stdout)] // the figures are the point

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use pace_ws_edge::EdgeLimits;
use pace_ws_edge::views::Views;
use pace_ws_edge::views::race::Races;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;

mod common;
use common::*;

/// A client's copy of the race: what applying its frames gives.
#[derive(Default)]
struct Replica {
    seq: u64,
    rows: std::collections::BTreeMap<String, Value>,
    snapshots: usize,
}

impl Replica {
    fn apply(&mut self, f: &Value) {
        match f["type"].as_str() {
            Some("snapshot") => {
                self.rows = f["rows"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| (r["participant"].as_str().unwrap().to_owned(), r.clone()))
                    .collect();
                self.snapshots += 1;
            }
            Some("delta") => {
                assert_eq!(
                    f["seq"].as_u64(),
                    Some(self.seq + 1),
                    "deltas in order, no gap"
                );
                for r in f["upserts"].as_array().unwrap() {
                    self.rows
                        .insert(r["participant"].as_str().unwrap().to_owned(), r.clone());
                }
                for p in f["removes"].as_array().unwrap() {
                    self.rows.remove(p.as_str().unwrap());
                }
            }
            other => panic!("unexpected frame {other:?}: {f}"),
        }
        self.seq = f["seq"].as_u64().unwrap();
    }

    fn equals(&self, views: &Views) -> bool {
        let (seq, rows) = views.get::<Races>().standings("r").unwrap();
        let live: std::collections::BTreeMap<String, Value> = rows
            .into_iter()
            .map(|r| {
                (
                    r.row.participant.clone(),
                    serde_json::to_value(r.row).unwrap(),
                )
            })
            .collect();
        seq == self.seq && live == self.rows
    }
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    kb * 1024
}

/// A spectator that does the handshake, reads the snapshot and then reads
/// nothing: a small receive buffer, so the edge's writes soon block.
async fn stalled_spectator(edge: &Edge) -> Ws {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(edge.addr).await.unwrap();
    let (ws, _) =
        tokio_tungstenite::client_async(edge.url("/ws/races/r"), MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_spectators_in_order_and_a_stalled_one_gets_a_snapshot() {
    let _serial = SERIAL.lock().await;
    const SPECTATORS: usize = 1000;
    const CHANGES: u64 = 300;
    let edge = Edge::start(EdgeLimits {
        socket_send_buffer: Some(16 * 1024),
        // Every spectator here comes from 127.0.0.1.
        max_per_address: 0,
        requests: pace_ws_edge::transport::bucket::Rate::new(10_000.0, 10_000.0),
        ..EdgeLimits::default()
    })
    .await;
    let mut stalled = stalled_spectator(&edge).await;
    let mut stalled_replica = Replica::default();
    stalled_replica.apply(&next(&mut stalled).await);

    // The spectators connect, read their snapshot, then read every frame,
    // checking order as they go.
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(SPECTATORS);
    let mut spectators = Vec::new();
    for _ in 0..SPECTATORS {
        let (mut ws, _) = tokio_tungstenite::connect_async(edge.url("/ws/races/r"))
            .await
            .unwrap();
        let ready = ready_tx.clone();
        spectators.push(tokio::spawn(async move {
            let mut replica = Replica::default();
            replica.apply(&next(&mut ws).await);
            ready.send(()).await.unwrap();
            while replica.seq < CHANGES {
                replica.apply(&next(&mut ws).await);
            }
            (replica, ws)
        }));
    }
    for _ in 0..SPECTATORS {
        ready_rx.recv().await.unwrap();
    }
    // Changes at a steady 100 a second, whatever the stalled one does.
    let t0 = Instant::now();
    for seq in 1..=CHANGES {
        edge.views
            .get::<Races>()
            .apply_standings(change(seq, 2, 100));
        tokio::time::sleep_until((t0 + Duration::from_millis(10 * seq)).into()).await;
    }
    let mut fast = Vec::new();
    for s in spectators {
        let (replica, ws) = tokio::time::timeout(Duration::from_secs(60), s)
            .await
            .expect("every spectator keeps up")
            .unwrap();
        assert_eq!(
            replica.snapshots, 1,
            "a spectator that keeps up gets no second snapshot"
        );
        assert!(replica.equals(&edge.views));
        fast.push(ws);
    }
    let took = t0.elapsed();
    println!("{SPECTATORS} spectators got {CHANGES} changes each, in order, in {took:?}");
    for mut ws in fast {
        let _ = ws.close(None).await;
    }

    // Now flood the stalled one: 40 MB of changes. Its queue and socket are
    // bounded, so the edge's memory is not the backlog.
    let before = rss_bytes();
    let lag_snapshots = || {
        observability::metrics()
            .edge_lag_snapshots
            .with_label_values(&["race"])
            .get()
    };
    let lagged_before = lag_snapshots();
    let flood = 20_000u64;
    for seq in CHANGES + 1..=CHANGES + flood {
        edge.views
            .get::<Races>()
            .apply_standings(change(seq, 8, 250));
        if seq % 1000 == 0 {
            tokio::task::yield_now().await;
            if std::env::var("PACE_TEST_RSS").is_ok() {
                println!(
                    "{seq}: +{} MB",
                    rss_bytes().saturating_sub(before) / 1_000_000
                );
            }
        }
    }
    let grew = rss_bytes().saturating_sub(before);
    let bytes = serde_json::to_string(&change(1, 8, 250)).unwrap().len() as u64 * flood;
    println!(
        "flooded one stalled spectator with {flood} changes ({} MB); the process grew {} MB",
        bytes / 1_000_000,
        grew / 1_000_000
    );
    assert!(
        grew < 24 << 20,
        "the edge held the stalled client's backlog: +{grew} bytes"
    );

    // The stalled one reads again: what was queued, then a snapshot equal to
    // the live view.
    let last = CHANGES + flood;
    while stalled_replica.seq < last {
        stalled_replica.apply(&next(&mut stalled).await);
    }
    assert!(
        stalled_replica.snapshots >= 2,
        "it was sent a snapshot, not the backlog"
    );
    assert!(lag_snapshots() > lagged_before);
    assert!(stalled_replica.equals(&edge.views));
    assert!(
        quiet(&mut stalled, Duration::from_millis(300))
            .await
            .is_empty()
    );
    edge.stop().await;
}

#[tokio::test]
async fn since_gives_exactly_the_missed_changes() {
    let _serial = SERIAL.lock().await;
    let edge = Edge::start(EdgeLimits::default()).await;
    for seq in 1..=10 {
        edge.views.get::<Races>().apply_standings(change(seq, 2, 5));
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(edge.url("/ws/races/r"))
        .await
        .unwrap();
    let mut replica = Replica::default();
    replica.apply(&next(&mut ws).await);
    assert_eq!(replica.seq, 10);
    ws.close(None).await.unwrap();
    // Missed while away.
    for seq in 11..=15 {
        edge.views.get::<Races>().apply_standings(change(seq, 2, 5));
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(edge.url("/ws/races/r?since=10"))
        .await
        .unwrap();
    assert_eq!(
        next(&mut ws).await,
        json!({"type": "resumed", "view": "race", "id": "r", "since": 10, "seq": 15})
    );
    for _ in 11..=15 {
        replica.apply(&next(&mut ws).await);
    }
    assert!(
        quiet(&mut ws, Duration::from_millis(300)).await.is_empty(),
        "exactly the missed ones"
    );
    assert!(replica.equals(&edge.views));
    assert_eq!(replica.snapshots, 1);

    // The same over /ws, beside a participant and a ping.
    let (mut ws, _) = tokio_tungstenite::connect_async(edge.url("/ws"))
        .await
        .unwrap();
    for frame in [
        json!({"type": "subscribe", "view": "race", "id": "r", "since": 13}),
        json!({"type": "subscribe", "view": "participant", "id": "r", "participant": "p3"}),
        json!({"type": "ping", "nonce": 7}),
    ] {
        ws.send(Message::text(frame.to_string())).await.unwrap();
    }
    let got = quiet(&mut ws, Duration::from_millis(300)).await;
    let kinds: Vec<(&str, &str, u64)> = got
        .iter()
        .map(|f| {
            (
                f["type"].as_str().unwrap(),
                f["view"].as_str().unwrap_or(""),
                f["seq"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("resumed", "race", 15),
            ("delta", "race", 14),
            ("delta", "race", 15),
            ("snapshot", "participant", 15),
            ("pong", "", 0),
        ]
    );
    // A resume from before what is held: a snapshot.
    for seq in 16..=1200 {
        edge.views.get::<Races>().apply_standings(change(seq, 1, 5));
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(edge.url("/ws/races/r?since=15"))
        .await
        .unwrap();
    let f = next(&mut ws).await;
    assert_eq!((&f["type"], &f["seq"]), (&json!("snapshot"), &json!(1200)));
    edge.stop().await;
}

/// A spectator, once the edge has a place for one.
async fn when_room(edge: &Edge) -> Ws {
    let t0 = Instant::now();
    loop {
        match tokio_tungstenite::connect_async(edge.url("/ws/races/r")).await {
            Ok((ws, _)) => return ws,
            Err(_) if t0.elapsed() < Duration::from_secs(5) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("no place came back: {e}"),
        }
    }
}

#[tokio::test]
async fn errors_limits_origins_and_a_graceful_shutdown() {
    let _serial = SERIAL.lock().await;
    let edge = Edge::start(EdgeLimits {
        max_connections: 3,
        ..EdgeLimits::default()
    })
    .await;
    let (mut ws, _) = tokio_tungstenite::connect_async(edge.url("/ws"))
        .await
        .unwrap();
    let cases = [
        ("{", "bad_frame"),
        (r#"{"type":"shout"}"#, "bad_frame"),
        (
            r#"{"type":"subscribe","view":"race","id":"nope"}"#,
            "unknown_race",
        ),
        (
            r#"{"type":"subscribe","view":"room","id":"nope"}"#,
            "unknown_room",
        ),
        (
            r#"{"type":"subscribe","view":"participant","id":"r"}"#,
            "bad_frame",
        ),
        (
            r#"{"type":"unsubscribe","view":"race","id":"r"}"#,
            "not_subscribed",
        ),
        (
            r#"{"type":"post","room":"lobby","text":"hi"}"#,
            "unauthorized",
        ),
    ];
    for (frame, code) in cases {
        ws.send(Message::text(frame)).await.unwrap();
        let f = next(&mut ws).await;
        assert_eq!(
            (f["type"].as_str(), f["code"].as_str()),
            (Some("error"), Some(code)),
            "{frame}"
        );
    }
    ws.send(Message::text(
        r#"{"type":"subscribe","view":"race","id":"r"}"#,
    ))
    .await
    .unwrap();
    assert_eq!(next(&mut ws).await["type"], "snapshot");
    ws.send(Message::text(
        r#"{"type":"subscribe","view":"race","id":"r"}"#,
    ))
    .await
    .unwrap();
    assert_eq!(next(&mut ws).await["code"], "already_subscribed");
    ws.send(Message::text(
        r#"{"type":"unsubscribe","view":"race","id":"r"}"#,
    ))
    .await
    .unwrap();
    assert_eq!(next(&mut ws).await["type"], "unsubscribed");
    edge.views.get::<Races>().apply_standings(change(1, 1, 5));
    assert!(
        quiet(&mut ws, Duration::from_millis(200)).await.is_empty(),
        "unsubscribed"
    );

    // A bad token: an error frame, then the edge closes the socket (1008).
    let (mut bad, _) = tokio_tungstenite::connect_async(edge.url("/ws?token=forged"))
        .await
        .unwrap();
    assert_eq!(next(&mut bad).await["code"], "unauthorized");
    match tokio::time::timeout(Duration::from_secs(10), bad.next())
        .await
        .unwrap()
    {
        Some(Ok(Message::Close(Some(c)))) => assert_eq!(u16::from(c.code), 1008),
        other => panic!("expected a close frame, got {other:?}"),
    }
    drop(bad);

    // Origins: this host and the allowed one pass, another is refused.
    let http = reqwest::Client::new();
    let base = format!("http://{}", edge.addr);
    let status = |origin: &'static str| {
        let (http, url) = (http.clone(), format!("{base}/api/races"));
        async move {
            http.get(url)
                .header("origin", origin)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status("https://race.example").await, 200);
    assert_eq!(status("https://evil.example").await, 403);
    let own = format!("http://{}", edge.addr);
    let r = http
        .get(format!("{base}/api/races"))
        .header("origin", own)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Request ids: the client's, or a fresh one.
    let r = http
        .get(format!("{base}/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    let r = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"].len(), 16);
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        edge.url("/ws"),
    )
    .unwrap();
    req.headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!(
            "a foreign page's socket was not refused: {:?}",
            other.map(|_| ())
        ),
    }

    // The limit: three connections, then 503. (The closed one's place comes
    // back as soon as the edge has seen it go.)
    let (mut two, mut three) = (when_room(&edge).await, when_room(&edge).await);
    assert_eq!(next(&mut two).await["type"], "snapshot");
    assert_eq!(next(&mut three).await["type"], "snapshot");
    match tokio_tungstenite::connect_async(edge.url("/ws/races/r")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 503),
        other => panic!("a fourth connection was let in: {:?}", other.map(|_| ())),
    }

    // Shutdown: every client is told to reconnect, and the socket closes 1012.
    let stopping = tokio::spawn(edge.stop());
    for ws in [&mut ws, &mut two, &mut three] {
        let mut saw_reconnect = false;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .unwrap()
            {
                Some(Ok(Message::Text(t))) => {
                    let f: Value = serde_json::from_str(&t).unwrap();
                    saw_reconnect |= f["type"] == "reconnect";
                }
                Some(Ok(Message::Close(Some(c)))) => {
                    assert_eq!(u16::from(c.code), 1012);
                    break;
                }
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
        assert!(saw_reconnect);
    }
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn an_edge_up_longer_than_its_idle_timeout_still_serves_new_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _serial = SERIAL.lock().await;
    let edge = Edge::start(EdgeLimits {
        idle_timeout: Duration::from_millis(300),
        header_timeout: Duration::from_secs(60),
        ..EdgeLimits::default()
    })
    .await;
    // The edge has now been up for longer than the idle timeout.
    tokio::time::sleep(Duration::from_millis(600)).await;
    // A client that takes a moment to send its request is served.
    let mut s = TcpStream::connect(edge.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: edge\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    let (mut ws, _) = tokio_tungstenite::connect_async(edge.url("/ws/races/r"))
        .await
        .unwrap();
    assert_eq!(next(&mut ws).await["type"], "snapshot");
    // One that sends nothing is closed once it has been silent that long.
    let mut silent = TcpStream::connect(edge.addr).await.unwrap();
    let t0 = Instant::now();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut buf))
        .await
        .expect("a silent connection is closed")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        t0.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t0.elapsed()
    );
    drop(ws);
    edge.stop().await;
}

#[tokio::test]
async fn a_client_ping_is_answered_and_frames_sent_with_the_handshake_are_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::protocol::Role;
    let _serial = SERIAL.lock().await;
    let edge = Edge::start(EdgeLimits::default()).await;
    edge.views.get::<Races>().apply_standings(change(1, 2, 5));

    // A ping gets its pong, payload and all, between the view's frames.
    let (mut ws, _) = tokio_tungstenite::connect_async(edge.url("/ws/races/r"))
        .await
        .unwrap();
    assert_eq!(next(&mut ws).await["type"], "snapshot");
    ws.send(Message::Ping(b"are you there".as_slice().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Pong(p))) => return p,
                Some(Ok(_)) => {}
                other => panic!("the socket ended before a pong: {other:?}"),
            }
        }
    })
    .await
    .expect("a pong within 10 s");
    assert_eq!(&pong[..], b"are you there");
    drop(ws);

    // A client that sends its first frame in the same write as the
    // handshake: the edge reads it (it came with the HTTP request's bytes).
    let subscribe = br#"{"type":"subscribe","view":"race","id":"r"}"#;
    let mut raw =
        b"GET /ws HTTP/1.1\r\nhost: edge\r\nconnection: upgrade\r\nupgrade: websocket\r\n\
sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            .to_vec();
    // Masked with a zero key, so the payload reads as it is.
    raw.extend_from_slice(&[0x81, 0x80 | subscribe.len() as u8, 0, 0, 0, 0]);
    raw.extend_from_slice(subscribe);
    let mut tcp = TcpStream::connect(edge.addr).await.unwrap();
    tcp.write_all(&raw).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
        MaybeTlsStream::Plain(tcp),
        Role::Client,
        None,
    )
    .await;
    let first = next(&mut ws).await;
    assert_eq!(first["type"], "snapshot", "{first}");
    assert_eq!(first["id"], "r", "{first}");
    drop(ws);
    edge.stop().await;
}
