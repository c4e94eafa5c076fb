//! Epoch bindings: which input offsets each epoch covered, recorded on
//! `pace.bindings` by the source that closed the epoch, and followed by
//! every later run (DESIGN.md, invariant 1; Materialize's reclocking).
//!
//! A source that closes an epoch in which it read records sends one
//! [`EpochBinding`] (its topic, the epoch, the end offset reached on each
//! partition it read in it) and holds the epoch open until the broker has
//! it, so no output of an epoch is durable before its binding is. At start,
//! each source loads the bindings of its topic ([`load`]) and, for the
//! partitions it owns now, cuts every already-bound offset range into the
//! recorded epoch ([`Bound`]), whatever the worker count, process count or
//! tick; only offsets past a partition's last binding get new epochs.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use ingest::reader::{Since, read_to_end};
use ingest::{IngestError, KafkaConfig};
use schemas::EpochBinding;

use super::Time;

/// How long loading the bindings may take before the start fails.
const LOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// The bindings on `bindings` (the topic) produced `since`, by the input
/// topic they bind, read up to the end the topic has now. A record that
/// does not decode is skipped with a warning (no pace wrote it).
pub(super) fn load(
    kafka: &KafkaConfig,
    bindings: &str,
    since: Since,
) -> Result<BTreeMap<String, Vec<EpochBinding>>, IngestError> {
    let mut out: BTreeMap<String, Vec<EpochBinding>> = BTreeMap::new();
    let read = read_to_end(
        kafka,
        bindings,
        since,
        LOAD_TIMEOUT,
        |r| match serde_json::from_slice::<EpochBinding>(&r.payload) {
            Ok(b) => out.entry(b.topic.clone()).or_default().push(b),
            Err(e) => tracing::warn!(
                partition = r.partition,
                offset = r.offset,
                error = %e,
                "an epoch binding that does not decode is skipped"
            ),
        },
    )?;
    tracing::debug!(bindings = read, "epoch bindings read");
    Ok(out)
}

/// The first and last epoch of `bindings` (of every topic), if any.
pub(super) fn span(bindings: &BTreeMap<String, Vec<EpochBinding>>) -> Option<(Time, Time)> {
    let epochs = bindings.values().flatten().map(|b| b.epoch);
    Some((epochs.clone().min()?, epochs.max()?))
}

/// The bound epochs of one source's partitions, from where it starts.
#[derive(Debug, Default)]
pub(super) struct Bound {
    /// Per partition, the bound epochs not read completely yet: `(epoch,
    /// end)`, oldest first, ends increasing.
    queues: BTreeMap<i32, VecDeque<(Time, i64)>>,
    /// Per partition, every binding followed, and where reading started:
    /// what a snapshot or a commit records once an epoch is passed.
    all: BTreeMap<i32, (i64, Vec<(Time, i64)>)>,
    /// The latest epoch bound on any partition.
    last: Option<Time>,
    /// The first and the last epoch of the bindings loaded for every topic
    /// and partition: while the dataflow's frontier is in this span, other
    /// sources may be following recorded epochs.
    span: Option<(Time, Time)>,
}

impl Bound {
    /// The bindings of `bindings` for the partitions in `starts` (where
    /// reading each starts, and the end it has now): those past the start.
    /// A partition whose bindings reach past its end was bound in another
    /// incarnation of the topic: its bindings are not followed (the
    /// partitions named are returned).
    pub(super) fn new(
        bindings: &[EpochBinding],
        starts: &BTreeMap<i32, (i64, i64)>,
    ) -> (Self, Vec<i32>) {
        let mut per: BTreeMap<i32, Vec<(Time, i64)>> = BTreeMap::new();
        for b in bindings {
            for (p, end) in &b.ends {
                if let Some(&(start, _)) = starts.get(p)
                    && *end > start
                {
                    per.entry(*p).or_default().push((b.epoch, *end));
                }
            }
        }
        let mut this = Self::default();
        let mut stale = Vec::new();
        for (&p, &(start, high)) in starts {
            let mut list = per.remove(&p).unwrap_or_default();
            list.sort_unstable();
            let mut kept: Vec<(Time, i64)> = Vec::with_capacity(list.len());
            for (t, end) in list {
                if kept.last().is_none_or(|&(_, e)| end > e) {
                    kept.push((t, end));
                }
            }
            if kept.last().is_some_and(|&(_, e)| e > high) {
                stale.push(p);
                kept.clear();
            }
            this.last = this.last.max(kept.last().map(|&(t, _)| t));
            if !kept.is_empty() {
                this.queues.insert(p, kept.iter().copied().collect());
            }
            this.all.insert(p, (start, kept));
        }
        (this, stale)
    }

    /// With `span`: the first and last epoch bound on any topic and
    /// partition (see [`span`]).
    pub(super) fn within(mut self, span: Option<(Time, Time)>) -> Self {
        self.span = span;
        self
    }

    /// The first and last epoch bound on any topic and partition.
    pub(super) fn span(&self) -> Option<(Time, Time)> {
        self.span
    }

    /// Whether some partition still has bound offsets to read.
    pub(super) fn replaying(&self) -> bool {
        !self.queues.is_empty()
    }

    /// The earliest epoch a record still to read may be bound to; `None`
    /// once every partition is past its bindings.
    pub(super) fn next(&self) -> Option<Time> {
        self.queues
            .values()
            .filter_map(|q| q.front())
            .map(|&(t, _)| t)
            .min()
    }

    /// The latest epoch bound on any partition.
    pub(super) fn last(&self) -> Option<Time> {
        self.last
    }

    /// The epoch of the record at `offset` of partition `p` (which has read
    /// everything before it), or `None` if it is past the partition's
    /// bindings.
    pub(super) fn epoch_of(&mut self, p: i32, offset: i64) -> Option<Time> {
        self.passed(p, offset);
        let t = self.queues.get(&p).and_then(|q| q.front()).map(|&(t, _)| t);
        self.passed(p, offset + 1);
        t
    }

    /// Partition `p` has read every offset before `next`.
    fn passed(&mut self, p: i32, next: i64) {
        if let Some(q) = self.queues.get_mut(&p) {
            while q.front().is_some_and(|&(_, end)| end <= next) {
                q.pop_front();
            }
            if q.is_empty() {
                self.queues.remove(&p);
            }
        }
    }

    /// Per partition owned, the offset after everything bound to an epoch
    /// before `upto` (where reading started, for a partition with none).
    pub(super) fn covered(&self, upto: Time) -> BTreeMap<i32, i64> {
        self.all
            .iter()
            .map(|(&p, (start, list))| {
                let n = list.partition_point(|&(t, _)| t < upto);
                (p, if n == 0 { *start } else { list[n - 1].1 })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(epoch: Time, ends: &[(i32, i64)]) -> EpochBinding {
        EpochBinding {
            topic: "t".into(),
            epoch,
            ends: ends.iter().copied().collect(),
        }
    }

    #[test]
    fn bound_offsets_fall_into_their_recorded_epochs_whatever_the_partitions_owned() {
        // One source of one worker read partitions 0 and 1.
        let all = [
            b(100, &[(0, 3), (1, 2)]),
            b(150, &[(1, 5)]),
            b(200, &[(0, 7)]),
        ];
        let starts: BTreeMap<i32, (i64, i64)> = [(0, (0, 9)), (1, (0, 9))].into();
        let (mut bound, stale) = Bound::new(&all, &starts);
        assert!(stale.is_empty());
        assert_eq!(bound.next(), Some(100));
        let zero: Vec<_> = (0..9).map(|o| bound.epoch_of(0, o)).collect();
        assert_eq!(
            zero,
            [100, 100, 100, 200, 200, 200, 200]
                .map(Some)
                .into_iter()
                .chain([None, None])
                .collect::<Vec<_>>()
        );
        assert_eq!(bound.next(), Some(100), "partition 1 is still in epoch 100");
        let one: Vec<_> = (0..6).map(|o| bound.epoch_of(1, o)).collect();
        assert_eq!(
            one,
            vec![Some(100), Some(100), Some(150), Some(150), Some(150), None]
        );
        assert!(!bound.replaying());
        assert_eq!(bound.last(), Some(200));
        // A worker of two that owns only partition 1 cuts it the same way.
        let starts: BTreeMap<i32, (i64, i64)> = [(1, (0, 9))].into();
        let (mut half, _) = Bound::new(&all, &starts);
        let again: Vec<_> = (0..6).map(|o| half.epoch_of(1, o)).collect();
        assert_eq!(one, again);
    }

    #[test]
    fn a_start_from_a_snapshot_follows_only_the_later_bindings() {
        let all = [b(100, &[(0, 3)]), b(150, &[(0, 5)]), b(200, &[(0, 7)])];
        let (mut bound, _) = Bound::new(&all, &[(0, (5, 9))].into());
        assert_eq!(bound.next(), Some(200));
        assert_eq!(bound.covered(200), [(0, 5)].into());
        assert_eq!(bound.covered(201), [(0, 7)].into());
        assert_eq!(bound.epoch_of(0, 5), Some(200));
        assert_eq!(bound.epoch_of(0, 6), Some(200));
        assert_eq!(bound.next(), None);
    }

    #[test]
    fn records_deleted_before_a_binding_end_pass_its_epoch() {
        let all = [b(100, &[(0, 3)]), b(150, &[(0, 5)])];
        // Retention removed offsets 0..4: the first record read is 4.
        let (mut bound, _) = Bound::new(&all, &[(0, (4, 9))].into());
        assert_eq!(bound.next(), Some(150));
        assert_eq!(bound.epoch_of(0, 4), Some(150));
        assert!(!bound.replaying());
    }

    #[test]
    fn bindings_past_a_partitions_end_belong_to_another_topic_and_are_not_followed() {
        let all = [b(100, &[(0, 3), (1, 50)])];
        let (bound, stale) = Bound::new(&all, &[(0, (0, 9)), (1, (0, 9))].into());
        assert_eq!(stale, vec![1]);
        assert_eq!(bound.covered(Time::MAX), [(0, 3), (1, 0)].into());
    }
}
