//! A subscription's forwarder: the task that feeds one view's changes into
//! its connection's queue, and the metric of live subscriptions.

use std::sync::Arc;

use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::writer::Out;
use crate::protocol::{Refused, error_frame};
use crate::views::live::{Key, LiveView};

/// Counts a live subscription while it lives.
struct Live(&'static str);

impl Live {
    fn new(view: &'static str) -> Self {
        observability::metrics()
            .edge_subscriptions
            .with_label_values(&[view])
            .inc();
        Live(view)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        observability::metrics()
            .edge_subscriptions
            .with_label_values(&[self.0])
            .dec();
    }
}

/// One subscription as its forwarder follows it.
pub(super) struct Sub {
    pub(super) live: Arc<dyn LiveView>,
    pub(super) key: Key,
    pub(super) user: Option<String>,
    /// The view's version and seq the subscriber has.
    pub(super) version: u64,
    pub(super) seq: u64,
}

/// Feeds one subscription into the connection's queue: every change after
/// its first frames, in order. Behind by more than the view's ring, it
/// sends a fresh snapshot ([`LiveView::resnapshot`]) instead of the
/// backlog, and skips the changes that snapshot already holds. It ends when
/// the view says the user may no longer see it.
pub(super) async fn forward(
    mut sub: Sub,
    mut changes: broadcast::Receiver<crate::views::live::Change>,
    queue: mpsc::Sender<Out>,
) {
    let view = sub.key.view.name();
    let _live = Live::new(view);
    let m = observability::metrics();
    loop {
        let next = changes.recv().await;
        if let Err(Refused(code, message)) = sub.live.check(&sub.key, sub.user.as_deref()) {
            let _ = queue.send(Out::Frame(error_frame(code, &message))).await;
            return;
        }
        let (out, kind) = match next {
            Ok(c) if c.version <= sub.version => continue,
            Ok(c) => {
                sub.version = c.version;
                sub.seq = c.seq;
                let out = match c.origin_ms {
                    Some(ms) => Out::Change(c.frame, ms, sub.key.view),
                    None => Out::Frame(c.frame),
                };
                (out, "delta")
            }
            Err(RecvError::Lagged(missed)) => {
                let Some((v, s, f)) = sub.live.resnapshot(&sub.key, sub.seq) else {
                    return;
                };
                tracing::info!(view, missed, "subscriber behind; sending a snapshot");
                m.edge_lag_snapshots.with_label_values(&[view]).inc();
                (sub.version, sub.seq) = (v, s);
                (Out::Frame(f), "snapshot")
            }
            Err(RecvError::Closed) => return,
        };
        if queue.send(out).await.is_err() {
            return;
        }
        m.edge_frames.with_label_values(&[kind]).inc();
    }
}
