//! [`Checkpoint`]: one operator's typed handle on the snapshots.

use std::rc::Rc;
use std::time::Instant;

use super::{Part, Snapshots, Time};

/// One operator's typed handle on the snapshots: what the restored point
/// holds of its part, and where it writes its state at every point. A job
/// sees snapshots only through this; [`Checkpoint::none`] (for tests, or
/// with snapshots off) restores nothing and writes nothing.
pub struct Checkpoint<S> {
    pub(super) snaps: Option<Rc<Snapshots>>,
    pub(super) part: String,
    pub(super) last: Time,
    pub(super) restored: Option<S>,
}

impl<S> Checkpoint<S> {
    /// A checkpoint that restores nothing and writes nothing.
    pub fn none() -> Self {
        Self {
            snaps: None,
            part: String::new(),
            last: 0,
            restored: None,
        }
    }

    /// The state of the restored point (once; `None` without one).
    pub fn take_restored(&mut self) -> Option<S> {
        self.restored.take()
    }

    /// Writes `state()` if a point at or before `upto` is due: the operator
    /// calls this before it applies a batch of time `upto` (or once its
    /// frontier reaches `upto`), so what it writes is its state as of the
    /// point (see the module docs), and as of every point since the one it
    /// wrote before (it applied no batch of a time in between).
    pub fn at<V: std::borrow::Borrow<S>>(&mut self, upto: Time, state: impl FnOnce() -> V)
    where
        S: Part,
    {
        self.at_point(upto, |_| state());
    }

    /// As [`Checkpoint::at`], but `state` is given the point: for an
    /// operator that may already have emitted times after the point (a
    /// source following recorded epoch bindings), and so must say what it
    /// held as of the point itself.
    pub fn at_point<V: std::borrow::Borrow<S>>(&mut self, upto: Time, state: impl FnOnce(Time) -> V)
    where
        S: Part,
    {
        let Some(snaps) = &self.snaps else { return };
        let before = self.last;
        if let Some(point) = snaps.due(&mut self.last, upto) {
            snaps.write_value(
                (before, point),
                &self.part,
                std::borrow::Borrow::borrow(&state(point)),
            );
        }
    }

    /// As [`Checkpoint::at_point`], for an operator whose state as of a
    /// point is not the same for every point it skips (see
    /// [`Snapshots::finish`]): a Kafka source following recorded epochs
    /// gives records to times after its own. This writes `state(point)` at
    /// every point it skipped within `span` (the first and last epoch bound
    /// on any topic), then at the latest point at or before `upto`.
    pub fn at_each<V: std::borrow::Borrow<S>>(
        &mut self,
        upto: Time,
        span: Option<(Time, Time)>,
        mut state: impl FnMut(Time) -> V,
    ) where
        S: Part,
    {
        let Some(snaps) = &self.snaps else { return };
        if let Some((first, last)) = span {
            let every = snaps.interval;
            let mut point = (self.last + every).max(first - first % every);
            while point <= upto.min(last) {
                snaps.write_value(
                    (self.last, point),
                    &self.part,
                    std::borrow::Borrow::borrow(&state(point)),
                );
                self.last = point;
                point += every;
            }
        }
        self.at_point(upto, state);
    }

    /// As [`Checkpoint::at`], but `state()` is handed to the writer thread
    /// and serialized there: for a large state, `state()` should share the
    /// operator's data rather than copy it (e.g. collect a map of `Arc`s
    /// that the operator modifies with `Arc::make_mut`), so that the worker
    /// pauses only to collect it, and copies afterwards only what it
    /// changes before the thread is done with it.
    pub fn at_shared(&mut self, upto: Time, state: impl FnOnce() -> S)
    where
        S: Part + Send,
    {
        let Some(snaps) = &self.snaps else { return };
        let before = self.last;
        if let Some(point) = snaps.due(&mut self.last, upto) {
            let t0 = Instant::now();
            snaps.write_shared(t0, (before, point), &self.part, state());
        }
    }
}
