//! The one abstraction every live view (race, room, task, tournament) is
//! served through: [`LiveView`]. A view module owns its cache, encodes its
//! frames once (a body of its own, in [`crate::protocol::snapshot`] and
//! [`crate::protocol::delta`]) and broadcasts each
//! change as a [`Change`] on a bounded ring; a connection subscribes
//! through the trait and forwards changes (`crate::socket`) without knowing
//! which view it follows. A subscriber that falls more than the ring
//! behind is sent one fresh snapshot ([`LiveView::resnapshot`]) instead of
//! the backlog.

use std::sync::Arc;

use ingest::KafkaConfig;
use ingest::source::RawRecord;
use schemas::Topics;
use schemas::topics::ORIGIN_HEADER;
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;
use warp::filters::BoxedFilter;

use crate::protocol::{Frame, Refused, ViewKind};
use crate::transport::http::Callers;
use crate::transport::limits::EdgeLimits;

/// Changes buffered per view for subscribers that are behind.
pub const FRAME_BUFFER: usize = 256;

/// One change of one view, as broadcast to its subscribers.
#[derive(Clone, Debug)]
pub struct Change {
    /// This edge's version of the view after the change: it orders changes
    /// and snapshots, also across a pipeline restart that resets `seq`.
    pub version: u64,
    /// The view's sequence number after the change.
    pub seq: u64,
    /// The frame.
    pub frame: Frame,
    /// When the oldest input record behind the change was produced (Unix
    /// ms), if the changelog record said: end-to-end latency is measured
    /// from it when the frame is written.
    pub origin_ms: Option<i64>,
}

/// What a new subscription is sent first.
#[derive(Debug)]
pub enum First {
    /// The view as a whole.
    Snapshot(Frame),
    /// A `resumed` frame and exactly the deltas missed since the client's `since`.
    Resumed(Vec<Frame>),
}

impl First {
    /// The frames, and the kind they count as in the frame metrics.
    pub fn into_frames(self) -> (Vec<Frame>, &'static str) {
        match self {
            First::Snapshot(f) => (vec![f], "snapshot"),
            First::Resumed(frames) => (frames, "delta"),
        }
    }
}

/// A new subscription: what to send first, where that leaves the
/// subscriber, and the changes after it.
pub struct Subscribed {
    /// What to send first.
    pub first: First,
    /// The view's version the first frames bring the subscriber to.
    pub version: u64,
    /// The view's sequence number they bring it to.
    pub seq: u64,
    /// Every change after that (`None`: the view will not change again,
    /// as a finished task).
    pub changes: Option<broadcast::Receiver<Change>>,
}

/// A fresh snapshot: its version, sequence number and frame.
pub type Snapshot = (u64, u64, Frame);

/// What a subscription is to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// Which view.
    pub view: ViewKind,
    /// Its id (race, room, task or tournament).
    pub id: String,
    /// The participant, with view `participant`.
    pub participant: Option<String>,
    /// The window, for a window of a race.
    pub window: Option<crate::protocol::viewport::Window>,
}

impl Key {
    /// The subscription slot this key takes on a connection: a race's
    /// window and the race as a whole share one (a new window moves it).
    pub fn slot(&self) -> Key {
        Key {
            window: None,
            ..self.clone()
        }
    }
}

/// A view the edge serves live.
pub trait LiveView: Send + Sync + 'static {
    /// Subscribes `user` (`None`: anonymous) to `key`: the first frames and
    /// the changes after them, taken together so nothing falls between.
    /// With `since`, the frames the client missed after that seq, if held.
    fn subscribe(
        &self,
        key: &Key,
        user: Option<&str>,
        since: Option<u64>,
    ) -> Result<Subscribed, Refused>;

    /// A fresh snapshot for a subscriber that fell behind at `seq`; `None`
    /// ends the subscription.
    fn resnapshot(&self, key: &Key, seq: u64) -> Option<Snapshot>;

    /// Whether `user` may still see `key`, asked before each change is
    /// forwarded; a refusal ends the subscription with that error.
    fn check(&self, _key: &Key, _user: Option<&str>) -> Result<(), Refused> {
        Ok(())
    }

    /// For a client at `since` that missed more than the view holds: a
    /// read of the older changes from the view's changelog (`kafka`), to
    /// run off the runtime's threads. It gives the delta frames after
    /// `since` up to a seq from which the view holds them, and that seq;
    /// `None` (here, or from the read) means a snapshot instead.
    fn history(&self, _key: &Key, _since: u64, _kafka: &KafkaConfig) -> Option<History> {
        None
    }
}

/// A read of a view's older changes: the delta frames, and the seq they
/// bring a client to.
pub type History = Box<dyn FnOnce() -> Option<(Vec<Frame>, u64)> + Send>;

/// A changelog a view is rebuilt from, and what to do with each record.
pub struct Changelog {
    /// The topic.
    pub topic: String,
    /// Applies one record to the view.
    pub apply: Box<dyn Fn(RawRecord) + Send>,
}

impl Changelog {
    /// `topic`, whose records decode as JSON `T` and are applied with
    /// their origin (when the record was produced that caused them); a
    /// record that does not decode is logged as a bad `what` and skipped.
    pub fn json<T: DeserializeOwned>(
        topic: &str,
        what: &'static str,
        apply: impl Fn(T, Option<i64>) + Send + 'static,
    ) -> Self {
        Self::json_at(topic, what, move |change, origin, _| apply(change, origin))
    }

    /// [`Changelog::json`] whose `apply` also gets each record's place in
    /// the topic, `(partition, offset)`.
    pub fn json_at<T: DeserializeOwned>(
        topic: &str,
        what: &'static str,
        apply: impl Fn(T, Option<i64>, (i32, i64)) + Send + 'static,
    ) -> Self {
        Self::raw(topic, move |raw| {
            // A traced change (a task's result, say): applying it, and the
            // frames that sends, is a span of the trace.
            let span = raw.trace().map(|parent| {
                observability::traces::child(
                    tracing::info_span!(
                        "edge.apply",
                        otel.name = %format_args!("apply {what}"),
                        otel.kind = "consumer",
                        messaging.kafka.offset = raw.offset,
                    ),
                    Some(&parent),
                )
            });
            let _in = span.as_ref().map(tracing::Span::enter);
            match serde_json::from_slice::<T>(&raw.payload) {
                Ok(change) => apply(change, origin(&raw), (raw.partition, raw.offset)),
                Err(e) => tracing::error!(offset = raw.offset, error = %e, "bad {what}"),
            }
        })
    }

    /// `topic`, whose records `apply` takes as they are.
    pub fn raw(topic: &str, apply: impl Fn(RawRecord) + Send + 'static) -> Self {
        Self {
            topic: topic.to_owned(),
            apply: Box::new(apply),
        }
    }
}

/// The origin a changelog record carries, if any.
fn origin(raw: &RawRecord) -> Option<i64> {
    raw.header(ORIGIN_HEADER).and_then(|v| v.parse().ok())
}

/// What the edge gives a view's routes: who a request is and what it may
/// write, and the edge's limits.
pub struct Context {
    /// Tokens, budgets and the way into the input topics.
    pub callers: Callers,
    /// The edge's bounds.
    pub limits: EdgeLimits,
}

/// A view's HTTP routes, boxed so that the edge can chain any view's.
pub type Routes = BoxedFilter<(warp::reply::Response,)>;

/// One view as the edge runs it: what it serves ([`LiveView`]), the
/// subscriptions it answers, the changelogs it is rebuilt from and its
/// routes. The edge loops over every [`ViewModule`] (`views/mod.rs`) and
/// names none of them.
pub trait ViewModule: LiveView {
    /// The subscriptions (`view` of a `subscribe` frame) it answers.
    fn kinds(&self) -> &'static [ViewKind];

    /// The changelogs it is rebuilt from, in `topics`.
    fn changelogs(self: Arc<Self>, topics: &Topics) -> Vec<Changelog>;

    /// Its HTTP routes.
    fn routes(self: Arc<Self>, context: &Context) -> Routes;
}
