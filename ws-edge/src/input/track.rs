//! `WS /ws/track?token=T`: participant devices stream GPS points into
//! `pace.gps` through the edge.
//!
//! The token names the participant; a device sends
//! `{"type":"point","ref":N,"point":{race, participant, time, lat, lon, …}}`
//! and gets `{"type":"ack","ref":N,"partition":P,"offset":O}` once the
//! broker has the point, in the order it sent them (up to [`IN_FLIGHT`]
//! points may be on their way at once). A point that is malformed, invalid
//! or for another participant gets `{"type":"error","code":…,"ref":N,
//! "message":…}` and a record in `pace.dlq` with the reason and the bytes
//! received (the `point` as sent, or the whole frame if it has none): nothing
//! is lost silently. `{"type":"ping"}` gets a pong.
//!
//! Budgets are the token subject's, over all its connections to this edge:
//! [`EdgeLimits::points`](crate::transport::limits::EdgeLimits::points) accepted
//! points (past it, `rate_limited`: send it again later) and
//! [`EdgeLimits::refusals`](crate::transport::limits::EdgeLimits::refusals)
//! dead-lettered refusals (past it a refused point gets its error frame but
//! no dead letter, and a connection that has sent
//! [`REFUSALS_BEFORE_CLOSE`] such points in a row is closed, 1008). Every
//! frame also counts against the connection's frame budget.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use schemas::GpsPoint;
use tokio_tungstenite::tungstenite::Message;

use crate::auth::AuthError;
use crate::input::{SendError, Topic};
use crate::protocol::{DeviceError, DeviceFrame, DeviceKind, DeviceServerFrame};
use crate::socket::{Shared, close_message};
use crate::transport::upgrade::{Inbound, Incoming, Keepalive, Outbound, WsStream};

/// Points a device may have on their way to the broker at once.
pub const IN_FLIGHT: usize = 256;
/// Refused points past the refusal budget, in a row, before the edge closes
/// the connection.
pub const REFUSALS_BEFORE_CLOSE: u32 = 100;

type Pending = Pin<Box<dyn Future<Output = String> + Send>>;

fn error(code: DeviceError, reference: Option<u64>, message: &str) -> String {
    DeviceServerFrame::Error {
        code,
        reference,
        message,
    }
    .encode()
}

/// Runs one device's connection.
pub(crate) async fn run(
    rx: WsStream,
    mut tx: Outbound,
    shared: Arc<Shared>,
    user: Result<Option<String>, AuthError>,
) {
    let user = match user.and_then(|u| u.ok_or(AuthError::Missing)) {
        Ok(u) => u,
        Err(e) => {
            let frame = error(DeviceError::Unauthorized, None, &e.to_string());
            let _ = send(&mut tx, &shared.limits, Message::text(frame)).await;
            let _ = send(&mut tx, &shared.limits, close_message(1008, "unauthorized")).await;
            tx.shutdown().await;
            return;
        }
    };
    tracing::debug!(participant = %user, "device connected");
    let limits = &shared.limits;
    let keepalive = Arc::new(Keepalive::default());
    let mut rx = Inbound::new(rx, limits, keepalive.clone());
    let mut pending: FuturesOrdered<Pending> = FuturesOrdered::new();
    let stop = crate::socket::stopped(shared.shutdown.clone());
    tokio::pin!(stop);
    let mut pings = tokio::time::interval_at(
        tokio::time::Instant::now() + limits.ping_interval,
        limits.ping_interval,
    );
    let mut device = Device {
        shared: shared.clone(),
        user,
        refused_in_a_row: 0,
    };
    let mut reading = true;
    let mut close = (1000, "bye");
    loop {
        tokio::select! {
            Some(reply) = pending.next(), if !pending.is_empty() => {
                if send(&mut tx, limits, Message::text(reply)).await.is_err() {
                    break;
                }
            }
            msg = rx.next(), if reading && pending.len() < IN_FLIGHT => match msg {
                Incoming::Text(t) => pending.push_back(device.point(t.as_bytes())),
                Incoming::Binary(b) => pending.push_back(device.point(&b)),
                Incoming::OverBudget => {
                    reading = false;
                    close = (1008, "too many frames");
                }
                Incoming::Closed | Incoming::Failed(_) => reading = false,
            },
            pong = keepalive.pong() => {
                if send(&mut tx, limits, pong).await.is_err() {
                    break;
                }
            }
            _ = pings.tick() => match keepalive.ping() {
                Some(ping) => {
                    if send(&mut tx, limits, ping).await.is_err() {
                        break;
                    }
                }
                None => {
                    crate::transport::upgrade::no_pong();
                    close = (1008, "no pong");
                    break;
                }
            },
            () = &mut stop => {
                // Answer what is on its way (within half the drain), then
                // ask the device to come back.
                let _ = tokio::time::timeout(limits.drain / 2, async {
                    while let Some(reply) = pending.next().await {
                        let _ = send(&mut tx, limits, Message::text(reply)).await;
                    }
                })
                .await;
                let frame = DeviceServerFrame::Reconnect { reason: "shutdown", after_ms: 1000 }.encode();
                let _ = send(&mut tx, limits, Message::text(frame)).await;
                let _ = send(&mut tx, limits, close_message(1012, "restarting")).await;
                tx.shutdown().await;
                rx.drain(crate::transport::upgrade::CLOSE_WAIT.min(limits.drain / 2)).await;
                return;
            }
        }
        if device.refused_in_a_row >= REFUSALS_BEFORE_CLOSE {
            observability::metrics()
                .edge_refused
                .with_label_values(&["refusals"])
                .inc();
            reading = false;
            close = (1008, "too many refused points");
        }
        if !reading && pending.is_empty() {
            break;
        }
    }
    let _ = send(&mut tx, limits, close_message(close.0, close.1)).await;
    tx.shutdown().await;
    rx.drain(crate::transport::upgrade::CLOSE_WAIT).await;
}

/// Sends one message, within the write timeout.
async fn send(
    tx: &mut Outbound,
    limits: &crate::transport::limits::EdgeLimits,
    msg: Message,
) -> Result<(), ()> {
    match tokio::time::timeout(limits.write_timeout, tx.send(&msg)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(()),
        Err(_) => {
            observability::metrics()
                .edge_refused
                .with_label_values(&["write_timeout"])
                .inc();
            Err(())
        }
    }
}

/// One device's connection state.
struct Device {
    shared: Arc<Shared>,
    user: String,
    /// Refused points past the refusal budget since the last good one.
    refused_in_a_row: u32,
}

impl Device {
    /// One message from the device: what to answer, once it is settled.
    fn point(&mut self, raw: &[u8]) -> Pending {
        let frame: DeviceFrame<'_> = match serde_json::from_slice(raw) {
            Ok(f) => f,
            Err(e) => {
                let reason = format!("bad frame: {e}");
                return self.refuse(DeviceError::BadFrame, None, raw, reason);
            }
        };
        let reference = frame.reference;
        match (frame.kind, frame.point) {
            (DeviceKind::Ping, _) => {
                let pong = DeviceServerFrame::Pong { nonce: frame.nonce }.encode();
                Box::pin(std::future::ready(pong))
            }
            (DeviceKind::Point, Some(point)) => self.accept(reference, point.get().as_bytes()),
            (DeviceKind::Point | DeviceKind::Unknown, _) => {
                let reason = "bad frame: expected {\"type\":\"point\",\"ref\":N,\"point\":{…}}";
                self.refuse(DeviceError::BadFrame, reference, raw, reason.to_owned())
            }
        }
    }

    fn accept(&mut self, reference: Option<u64>, body: &[u8]) -> Pending {
        let point: GpsPoint = match schemas::decode(body) {
            Ok(p) => p,
            Err(e) => return self.refuse(DeviceError::Invalid, reference, body, e.to_string()),
        };
        if point.participant != self.user {
            let reason = format!(
                "the token is {:?}'s; this point is {:?}'s",
                self.user, point.participant
            );
            return self.refuse(DeviceError::Forbidden, reference, body, reason);
        }
        self.refused_in_a_row = 0;
        let m = observability::metrics();
        if !self.shared.budgets.points.take(&self.user) {
            m.edge_track_points
                .with_label_values(&["rate_limited"])
                .inc();
            m.edge_rate_limited.with_label_values(&["point"]).inc();
            let reply = error(
                DeviceError::RateLimited,
                reference,
                "too many points; send this one again later",
            );
            return Box::pin(std::future::ready(reply));
        }
        let input = self.shared.chat.clone();
        Box::pin(async move {
            match input.track(&point).await {
                Ok((partition, offset)) => {
                    observability::metrics()
                        .edge_track_points
                        .with_label_values(&["accepted"])
                        .inc();
                    DeviceServerFrame::Ack {
                        reference,
                        partition,
                        offset,
                    }
                    .encode()
                }
                Err(SendError::Invalid(m)) => error(DeviceError::Invalid, reference, &m),
                Err(SendError::Unavailable(m)) => error(DeviceError::Unavailable, reference, &m),
            }
        })
    }

    /// Dead-letters `body` (the bytes received) with `reason`, within the
    /// subject's refusal budget, then answers with an error frame.
    fn refuse(
        &mut self,
        code: DeviceError,
        reference: Option<u64>,
        body: &[u8],
        reason: String,
    ) -> Pending {
        let m = observability::metrics();
        m.edge_track_points.with_label_values(&["refused"]).inc();
        if !self.shared.budgets.refusals.take(&self.user) {
            self.refused_in_a_row += 1;
            m.edge_rate_limited
                .with_label_values(&["refused_point"])
                .inc();
            let reply = error(
                code,
                reference,
                &format!("{reason} (not dead-lettered: too many refused points; slow down)"),
            );
            return Box::pin(std::future::ready(reply));
        }
        let input = self.shared.chat.clone();
        let body = body.to_vec();
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
}
