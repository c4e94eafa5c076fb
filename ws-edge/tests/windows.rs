//! Protocol v2 windows over real sockets: a window of a race gets its
//! ranks and nothing else, moves, and bad windows are refused. The views
//! are fed directly (no Kafka): this is the edge alone.

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use pace_ws_edge::EdgeLimits;
use pace_ws_edge::views::race::Races;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Protocol v2 over a real socket: a window gets its ranks and nothing
/// else, a second window on the same race moves the subscription (nothing
/// of the old window follows), and bad windows are refused.
#[tokio::test]
async fn a_window_gets_only_its_ranks_and_moves() {
    let _serial = SERIAL.lock().await;
    let edge = Edge::start(EdgeLimits::default()).await;
    edge.views.get::<Races>().apply_standings(change(1, 20, 5));
    let ranks = |f: &Value, k: &str| -> Vec<u64> {
        f[k].as_array()
            .unwrap()
            .iter()
            .map(|r| r["rank"].as_u64().unwrap())
            .collect()
    };
    let (mut top, _) = tokio_tungstenite::connect_async(edge.url("/ws/races/r?top=5"))
        .await
        .unwrap();
    let f = next(&mut top).await;
    assert_eq!(f["window"], json!({"from": 1, "to": 5, "total": 20}));
    assert_eq!(ranks(&f, "rows"), [1, 2, 3, 4, 5]);

    let (mut ws, _) = tokio_tungstenite::connect_async(edge.url("/ws"))
        .await
        .unwrap();
    let subscribe = |window: Value| {
        Message::text(
            json!({"type": "subscribe", "view": "race", "id": "r", "window": window}).to_string(),
        )
    };
    ws.send(subscribe(json!({"from": 10, "to": 12})))
        .await
        .unwrap();
    let f = next(&mut ws).await;
    assert_eq!(
        (&f["type"], &f["window"]),
        (
            &json!("snapshot"),
            &json!({"from": 10, "to": 12, "total": 20})
        )
    );
    assert_eq!(ranks(&f, "rows"), [10, 11, 12]);
    // Moving the window: the new one's snapshot, then only its changes.
    ws.send(subscribe(json!({"top": 3}))).await.unwrap();
    let f = next(&mut ws).await;
    assert_eq!(
        (&f["type"], &f["window"]),
        (
            &json!("snapshot"),
            &json!({"from": 1, "to": 3, "total": 20})
        )
    );
    // Changes 2..=11 each move participant p{seq}, ranked seq + 1.
    for seq in 2..=11 {
        edge.views.get::<Races>().apply_standings(change(seq, 1, 5));
    }
    let got = quiet(&mut ws, Duration::from_millis(300)).await;
    let seen: Vec<(u64, Vec<u64>)> = got
        .iter()
        .map(|f| (f["seq"].as_u64().unwrap(), ranks(f, "upserts")))
        .collect();
    assert_eq!(
        seen,
        [(2, vec![3])],
        "only the change inside the top 3; nothing of ranks 10..12"
    );
    let got = quiet(&mut top, Duration::from_millis(300)).await;
    let seen: Vec<(u64, Vec<u64>)> = got
        .iter()
        .map(|f| (f["seq"].as_u64().unwrap(), ranks(f, "upserts")))
        .collect();
    assert_eq!(seen, [(2, vec![3]), (3, vec![4]), (4, vec![5])]);

    for (frame, code) in [
        (
            json!({"type": "subscribe", "view": "race", "id": "r", "window": {"top": 0}}),
            "invalid",
        ),
        (
            json!({"type": "subscribe", "view": "race", "id": "r", "window": {"from": 1}}),
            "bad_frame",
        ),
        (
            json!({"type": "subscribe", "view": "race", "id": "r", "window": {"top": 3, "x": 1}}),
            "bad_frame",
        ),
        (
            json!({"type": "subscribe", "view": "room", "id": "lobby", "window": {"top": 3}}),
            "bad_frame",
        ),
        (
            json!({"type": "subscribe", "view": "race", "id": "nope", "window": {"top": 3}}),
            "unknown_race",
        ),
    ] {
        ws.send(Message::text(frame.to_string())).await.unwrap();
        let f = next(&mut ws).await;
        assert_eq!(
            (&f["type"], &f["code"]),
            (&json!("error"), &json!(code)),
            "{frame}"
        );
    }
    // A refused move leaves the window where it was.
    edge.views.get::<Races>().apply_standings(change(12, 20, 5));
    let f = next(&mut ws).await;
    assert_eq!(
        (&f["seq"], ranks(&f, "upserts")),
        (&json!(12), vec![1, 2, 3])
    );
    edge.stop().await;
}
