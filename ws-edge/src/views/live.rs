//! The one abstraction every live view (race, room, task, tournament) is
//! served through: [`LiveView`]. A view module owns its cache, encodes its
//! frames once (a body of its own, in [`crate::protocol::snapshot`] and
//! [`crate::protocol::delta`]) and broadcasts each
//! change as a [`Change`] on a bounded ring; a connection subscribes
//! through the trait and forwards changes (`crate::socket`) without knowing
//! which view it follows. A subscriber that falls more than the ring
//! behind is sent one fresh snapshot ([`LiveView::resnapshot`]) instead of
//! the backlog.

use tokio::sync::broadcast;

use crate::protocol::{Frame, Refused, ViewKind};

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
}
