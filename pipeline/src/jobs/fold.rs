//! [`fold_in_order`]: the stateful operator the rooms, results and
//! tournaments jobs share. Events are exchanged by key, held until no input
//! can still produce their time ([`super::stash::Stash`]), then applied a
//! time at a time, sorted (so in Kafka order per key), to the worker's
//! state, which is written at every snapshot point through a
//! [`Checkpoint`]. Output at a time depends only on input up to it.

use std::hash::Hash;

use differential_dataflow::lattice::Lattice;
use differential_dataflow::{AsCollection, ExchangeData, VecCollection};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::operator::Operator;
use timely::order::TotalOrder;
use timely::progress::Timestamp;

use super::stash::Stash;
use crate::snapshot::{Checkpoint, Part};

/// Folds `events` into a state per worker with `step`, which gets one
/// time's events (only insertions: events only arrive), sorted, and pushes
/// the view's changes as `((key, row), diff)`. The state starts from what
/// `checkpoint` restored.
pub fn fold_in_order<'s, T, K, E, S, R>(
    events: VecCollection<'s, T, (K, E)>,
    name: &str,
    mut checkpoint: Checkpoint<S>,
    mut step: impl FnMut(&mut S, Vec<(K, E)>, &mut Vec<((K, R), isize)>) + 'static,
) -> VecCollection<'s, T, (K, R)>
where
    T: Timestamp + Lattice + TotalOrder + Ord + Into<u64>,
    K: ExchangeData + Hash,
    E: ExchangeData,
    S: Part,
    R: Clone + 'static,
{
    events
        .inner
        .unary_frontier(
            Exchange::new(|u: &((K, E), T, isize)| super::hash(&(u.0).0)),
            name,
            move |_initial, _info| {
                let mut stash: Stash<T, ((K, E), isize)> = Stash::default();
                let mut state: S = checkpoint.take_restored().unwrap_or_default();
                let mut out = Vec::new();
                move |(input, frontier), output| {
                    input.for_each(|cap, data| {
                        if let Some(cap) = cap.retain_least(output.output_index()) {
                            stash.absorb(&cap, data.drain(..), |e, r| (e, r));
                        }
                    });
                    while let Some((cap, mut batch)) = stash.next_ready(&[frontier]) {
                        let t = cap.time().clone();
                        checkpoint.at(t.clone().into(), || &state);
                        batch.retain(|(_, r)| *r > 0);
                        batch.sort();
                        step(
                            &mut state,
                            batch.into_iter().map(|(e, _)| e).collect(),
                            &mut out,
                        );
                        output
                            .session(&cap)
                            .give_iterator(out.drain(..).map(|(row, r)| (row, t.clone(), r)));
                    }
                    // Every batch before the frontier is applied.
                    if let Some(upto) = frontier.frontier().first() {
                        checkpoint.at(upto.clone().into(), || &state);
                    }
                }
            },
        )
        .as_collection()
}

/// Pushes what changed from `before` to `after` (the rows of `key`).
pub fn changed_rows<K: Clone, R: Clone + PartialEq>(
    key: &K,
    before: &[R],
    after: &[R],
    out: &mut Vec<((K, R), isize)>,
) {
    for r in before.iter().filter(|r| !after.contains(r)) {
        out.push(((key.clone(), r.clone()), -1));
    }
    for r in after.iter().filter(|r| !before.contains(r)) {
        out.push(((key.clone(), r.clone()), 1));
    }
}

/// Events grouped by key, each group sorted: the order a sequential
/// reference applies them in.
pub fn in_order_by_key<K: Ord, E: Ord>(
    events: &[(K, E)],
) -> std::collections::BTreeMap<&K, Vec<&E>> {
    let mut by_key: std::collections::BTreeMap<&K, Vec<&E>> = std::collections::BTreeMap::new();
    for (k, e) in events {
        by_key.entry(k).or_default().push(e);
    }
    for list in by_key.values_mut() {
        list.sort();
    }
    by_key
}
