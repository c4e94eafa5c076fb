//! A connection's writer: what goes to it ([`Out`]), and the task that
//! sends it to the socket in order, pings the client and answers its pings,
//! and gives up on a client that takes nothing for the write timeout.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::protocol::{Frame, ViewKind};
use crate::transport::limits::EdgeLimits;
use crate::transport::upgrade::{Keepalive, Outbound};

/// What goes to the writer. Small: a connection's queue holds room for 32
/// of them from its start.
pub(super) enum Out {
    Frame(Frame),
    /// A frame with a view change whose oldest input record was produced at
    /// this Unix ms: its end-to-end latency is observed once written.
    Change(Frame, i64, ViewKind),
    Close(u16, &'static str),
}

/// A close frame.
pub(crate) fn close_message(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code: code.into(),
        reason: reason.into(),
    }))
}

/// Sends frames until the queue closes, the client stops taking them, or it
/// stops answering pings.
pub(super) async fn write(
    mut sink: Outbound,
    mut outbox: mpsc::Receiver<Out>,
    limits: EdgeLimits,
    keepalive: Arc<Keepalive>,
) {
    let latency = &observability::metrics().edge_frame_latency;
    let timeout = limits.write_timeout;
    let mut pings = tokio::time::interval_at(
        tokio::time::Instant::now() + limits.ping_interval,
        limits.ping_interval,
    );
    loop {
        let out = tokio::select! {
            out = outbox.recv() => match out {
                Some(out) => out,
                None => break,
            },
            _ = pings.tick() => match keepalive.ping() {
                Some(ping) => {
                    if !matches!(tokio::time::timeout(timeout, sink.send(&ping)).await, Ok(Ok(()))) {
                        break;
                    }
                    continue;
                }
                None => {
                    crate::transport::upgrade::no_pong();
                    let _ = tokio::time::timeout(
                        Duration::from_secs(1),
                        sink.send(&close_message(1008, "no pong")),
                    )
                    .await;
                    break;
                }
            },
            pong = keepalive.pong() => {
                if !matches!(tokio::time::timeout(timeout, sink.send(&pong)).await, Ok(Ok(()))) {
                    break;
                }
                continue;
            }
        };
        let (msg, last, origin) = match out {
            Out::Frame(f) => (Message::Text(f), false, None),
            Out::Change(f, ms, view) => (Message::Text(f), false, Some((ms, view))),
            Out::Close(code, reason) => (close_message(code, reason), true, None),
        };
        match tokio::time::timeout(timeout, sink.send(&msg)).await {
            Ok(Ok(())) if last => break,
            Ok(Ok(())) => {
                if let Some((ms, view)) = origin {
                    let s = schemas::Timestamp(ms).elapsed_s();
                    latency.with_label_values(&[view.name()]).observe(s);
                }
            }
            Ok(Err(_)) => break,
            Err(_) => {
                tracing::info!("client took no frame for {timeout:?}; disconnecting");
                observability::metrics()
                    .edge_refused
                    .with_label_values(&["write_timeout"])
                    .inc();
                break;
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.shutdown()).await;
}

#[cfg(test)]
mod tests {
    /// Every connection's queue holds room for 32 of these from its start.
    #[test]
    fn what_goes_to_the_writer_is_small() {
        assert!(size_of::<super::Out>() <= 48, "{}", size_of::<super::Out>());
    }
}
