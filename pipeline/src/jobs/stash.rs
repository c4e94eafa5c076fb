//! Updates held until no input can still produce their time: what a
//! stateful operator needs to apply a time's batch whole, so that its output
//! at a time depends only on its input up to that time.

use std::collections::BTreeMap;

use timely::dataflow::operators::Capability;
use timely::order::TotalOrder;
use timely::progress::Timestamp;
use timely::progress::frontier::MutableAntichain;

/// Batches of updates by time, each with a capability for its time.
pub struct Stash<T: Timestamp, D> {
    pending: BTreeMap<T, (Capability<T>, Vec<D>)>,
}

impl<T: Timestamp + TotalOrder, D> Default for Stash<T, D> {
    fn default() -> Self {
        Self {
            pending: BTreeMap::new(),
        }
    }
}

impl<T: Timestamp + TotalOrder, D> Stash<T, D> {
    /// Holds differential updates `(x, t, r)` as `wrap(x, r)` under time `t`;
    /// `cap` is a capability no later than any of them.
    pub fn absorb<X>(
        &mut self,
        cap: &Capability<T>,
        updates: impl IntoIterator<Item = (X, T, isize)>,
        wrap: impl Fn(X, isize) -> D,
    ) {
        for (x, t, r) in updates {
            self.pending
                .entry(t.clone())
                .or_insert_with(|| (cap.delayed(&t), Vec::new()))
                .1
                .push(wrap(x, r));
        }
    }

    /// The earliest batch whose time none of `frontiers` can still produce.
    pub fn next_ready(
        &mut self,
        frontiers: &[&MutableAntichain<T>],
    ) -> Option<(Capability<T>, Vec<D>)> {
        let t = self.pending.keys().next()?.clone();
        if frontiers.iter().any(|f| f.less_equal(&t)) {
            return None;
        }
        self.pending.remove(&t)
    }
}
