//! `WS /ws/track?token=T`: participant devices stream GPS points into
//! `pace.gps` through the edge.
//!
//! The token names the participant; a device sends
//! `{"type":"point","ref":N,"point":{race, participant, time, lat, lon, …}}`
//! and gets `{"type":"ack","ref":N,"partition":P,"offset":O}` once the
//! broker has the point, in the order it sent them (up to [`IN_FLIGHT`]
//! points may be on their way at once). A point that is malformed, invalid,
//! for another participant or over the rate limit gets
//! `{"type":"error","code":…,"ref":N,"message":…}` and, unless it was only
//! too fast, a record in `pace.dlq` with the reason: nothing is lost
//! silently. `{"type":"ping"}` gets a pong.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::stream::FuturesOrdered;
use futures_util::{SinkExt, StreamExt};
use schemas::GpsPoint;
use warp::ws::{Message, WebSocket};

use crate::auth::AuthError;
use crate::post::{EdgeInput, RateLimit, SendError, Topic};
use crate::socket::{Shared, Slot};

/// Points a device may have on their way to the broker at once.
pub const IN_FLIGHT: usize = 256;
/// Points a device may send per second, sustained…
pub const POINTS_PER_SECOND: f64 = 50.0;
/// …and in a burst.
pub const POINT_BURST: f64 = 200.0;

type Pending = Pin<Box<dyn Future<Output = String> + Send>>;

fn error(code: &str, reference: Option<u64>, message: &str) -> String {
    serde_json::json!({"type": "error", "code": code, "ref": reference, "message": message})
        .to_string()
}

/// Runs one device's connection.
pub(crate) async fn run(
    socket: WebSocket,
    shared: Arc<Shared>,
    _slot: Slot,
    user: Result<Option<String>, AuthError>,
) {
    let (mut tx, mut rx) = socket.split();
    let user = match user.and_then(|u| u.ok_or(AuthError::Missing)) {
        Ok(u) => u,
        Err(e) => {
            let _ = tx
                .send(Message::text(error("unauthorized", None, &e.to_string())))
                .await;
            let _ = tx.send(Message::close_with(1008u16, "unauthorized")).await;
            return;
        }
    };
    tracing::debug!(participant = %user, "device connected");
    let input = shared.chat.clone();
    let mut limit = RateLimit::new(POINT_BURST, POINTS_PER_SECOND);
    let mut pending: FuturesOrdered<Pending> = FuturesOrdered::new();
    let stop = crate::socket::stopped(shared.shutdown.clone());
    tokio::pin!(stop);
    let mut reading = true;
    loop {
        tokio::select! {
            Some(reply) = pending.next(), if !pending.is_empty() => {
                if tx.send(Message::text(reply)).await.is_err() {
                    break;
                }
            }
            msg = rx.next(), if reading && pending.len() < IN_FLIGHT => match msg {
                Some(Ok(m)) if m.is_text() => {
                    pending.push_back(point(&input, &user, &mut limit, m.as_bytes()));
                }
                Some(Ok(m)) if m.is_binary() => {
                    pending.push_back(point(&input, &user, &mut limit, m.as_bytes()));
                }
                Some(Ok(m)) if m.is_close() => reading = false,
                Some(Ok(_)) => {}
                _ => reading = false,
            },
            () = &mut stop => {
                // Answer what is on its way, then ask the device to come back.
                while let Some(reply) = pending.next().await {
                    let _ = tx.send(Message::text(reply)).await;
                }
                let frame = serde_json::json!({"type": "reconnect", "reason": "shutdown", "after_ms": 1000});
                let _ = tx.send(Message::text(frame.to_string())).await;
                let _ = tx.send(Message::close_with(1012u16, "restarting")).await;
                return;
            }
            else => break,
        }
        if !reading && pending.is_empty() {
            break;
        }
    }
    let _ = tx.send(Message::close()).await;
}

/// One message from a device: what to answer, once it is settled.
fn point(input: &Arc<EdgeInput>, user: &str, limit: &mut RateLimit, raw: &[u8]) -> Pending {
    let input = input.clone();
    let message: serde_json::Value = match serde_json::from_slice(raw) {
        Ok(v) => v,
        Err(e) => {
            let reason = format!("bad frame: {e}");
            return refuse(input, "bad_frame", None, raw.to_vec(), reason);
        }
    };
    let reference = message.get("ref").and_then(serde_json::Value::as_u64);
    match message.get("type").and_then(serde_json::Value::as_str) {
        Some("ping") => {
            let pong = serde_json::json!({"type": "pong", "nonce": message.get("nonce")});
            return Box::pin(std::future::ready(pong.to_string()));
        }
        Some("point") => {}
        _ => {
            let reason = "bad frame: expected {\"type\":\"point\",\"ref\":N,\"point\":{…}}";
            return refuse(
                input,
                "bad_frame",
                reference,
                raw.to_vec(),
                reason.to_owned(),
            );
        }
    }
    let body = message
        .get("point")
        .map(|p| serde_json::to_vec(p).expect("JSON values serialize"))
        .unwrap_or_default();
    let point: GpsPoint = match schemas::decode(&body) {
        Ok(p) => p,
        Err(e) => return refuse(input, "invalid", reference, body, e.to_string()),
    };
    if point.participant != user {
        let reason = format!(
            "the token is {user:?}'s; this point is {:?}'s",
            point.participant
        );
        return refuse(input, "forbidden", reference, body, reason);
    }
    if !limit.take() {
        observability::metrics()
            .edge_track_points
            .with_label_values(&["rate_limited"])
            .inc();
        let reply = error(
            "rate_limited",
            reference,
            "too many points; send this one again later",
        );
        return Box::pin(std::future::ready(reply));
    }
    Box::pin(async move {
        match input.track(&point).await {
            Ok((partition, offset)) => {
                observability::metrics()
                    .edge_track_points
                    .with_label_values(&["accepted"])
                    .inc();
                serde_json::json!({"type": "ack", "ref": reference, "partition": partition, "offset": offset})
                    .to_string()
            }
            Err(SendError::Invalid(m)) => error("invalid", reference, &m),
            Err(SendError::Unavailable(m)) => error("unavailable", reference, &m),
        }
    })
}

/// Dead-letters `body` with `reason`, then answers with an error frame.
fn refuse(
    input: Arc<EdgeInput>,
    code: &'static str,
    reference: Option<u64>,
    body: Vec<u8>,
    reason: String,
) -> Pending {
    observability::metrics()
        .edge_track_points
        .with_label_values(&["refused"])
        .inc();
    Box::pin(async move {
        match input.dead_letter(Topic::Gps, &body, &reason).await {
            Ok(()) => error(code, reference, &reason),
            Err(e) => error(
                code,
                reference,
                &format!("{reason} (and the dead-letter topic did not take it: {e})"),
            ),
        }
    })
}
