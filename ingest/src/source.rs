//! [`StaticConsumer`]: reads the partitions of one topic that are statically
//! assigned to one worker, and [`decode`] turns each record into an
//! [`Envelope`] or a [`DeadLetter`]. One-off reads of chosen partitions
//! (the archive, its verifier, the epoch bindings) are [`crate::reader`]'s.
//!
//! Partition `p` of a topic belongs to worker `p % workers`. There is no
//! consumer-group rebalancing: the assignment is a function of the worker count
//! alone, so every worker knows what it owns without coordination. The consumer
//! group is used only to store committed offsets.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{ClientConfig, ClientContext, Statistics};
use rdkafka::{Offset, TopicPartitionList};
use serde::de::DeserializeOwned;

use schemas::topics::{
    DLQ_MAX_PAYLOAD_BYTES, DLQ_OFFSET_HEADER, DLQ_PARTITION_HEADER, DLQ_REASON_HEADER,
    DLQ_SOURCE_HEADER, DLQ_TOPIC_HEADER, DLQ_TRUNCATED_HEADER,
};
use schemas::{DecodeError, Validate};

use crate::{IngestError, KafkaConfig};

/// The partitions of a topic with `partitions` partitions that `worker` (of `workers`) reads.
pub fn assigned_partitions(partitions: i32, worker: usize, workers: usize) -> Vec<i32> {
    (0..partitions)
        .filter(|p| (*p as usize) % workers == worker)
        .collect()
}

/// One record as read from Kafka.
#[derive(Clone, Debug)]
pub struct RawRecord {
    /// Partition.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
    /// Key, if any.
    pub key: Option<Vec<u8>>,
    /// Payload (empty for a tombstone).
    pub payload: Vec<u8>,
    /// The record's Kafka timestamp, milliseconds.
    pub timestamp_ms: Option<i64>,
    /// Headers, in order (values that are absent read as empty).
    pub headers: Vec<(String, Vec<u8>)>,
}

impl RawRecord {
    /// The record `m` holds, copied out of the client.
    pub(crate) fn read(m: &BorrowedMessage<'_>) -> Self {
        RawRecord {
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            timestamp_ms: m.timestamp().to_millis(),
            headers: m
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The value of header `name`, as text, if present and UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The trace context of its `traceparent` header, if it has a valid one.
    pub fn trace(&self) -> Option<observability::traces::TraceParent> {
        if self.headers.is_empty() {
            return None;
        }
        self.header(observability::traces::HEADER)
            .and_then(observability::traces::TraceParent::parse)
    }
}

/// A decoded, validated record and where it came from. Ordered by partition,
/// then offset.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Envelope<T> {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Kafka timestamp, milliseconds.
    pub timestamp_ms: Option<i64>,
    /// The record.
    pub record: T,
    /// The trace context of its `traceparent` header, if it had one.
    pub trace: Option<observability::traces::TraceParent>,
}

/// A record that could not be decoded or validated, for `pace.dlq`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
    /// Original key.
    pub key: Option<Vec<u8>>,
    /// Original payload, byte for byte.
    pub payload: Vec<u8>,
    /// Why it was refused (the [`DecodeError`] text).
    pub reason: String,
    /// Bounded reason label for metrics.
    pub kind: &'static str,
}

impl DeadLetter {
    /// The record `pace.dlq` gets for it: the original payload byte for
    /// byte (cut to [`DLQ_MAX_PAYLOAD_BYTES`], so that it always fits the
    /// broker; the whole record stays in its topic) and the headers naming
    /// the reason and the origin, and `refused_by` what refused a record
    /// that never reached its topic (partition and offset then -1). The
    /// one encoding of a dead letter, whoever sends it.
    pub fn record(&self, refused_by: Option<&str>) -> (&[u8], Vec<(&'static str, Vec<u8>)>) {
        let mut headers = vec![
            (DLQ_REASON_HEADER, self.reason.as_bytes().to_vec()),
            (DLQ_TOPIC_HEADER, self.topic.as_bytes().to_vec()),
            (
                DLQ_PARTITION_HEADER,
                self.partition.to_string().into_bytes(),
            ),
            (DLQ_OFFSET_HEADER, self.offset.to_string().into_bytes()),
        ];
        if let Some(by) = refused_by {
            headers.push((DLQ_SOURCE_HEADER, by.as_bytes().to_vec()));
        }
        let payload = if self.payload.len() > DLQ_MAX_PAYLOAD_BYTES {
            let size = self.payload.len().to_string();
            headers.push((DLQ_TRUNCATED_HEADER, size.into_bytes()));
            &self.payload[..DLQ_MAX_PAYLOAD_BYTES]
        } else {
            &self.payload[..]
        };
        (payload, headers)
    }
}

/// Decodes and validates `raw` from `topic`.
pub fn decode<T: DeserializeOwned + Validate>(
    topic: &str,
    raw: RawRecord,
) -> Result<Envelope<T>, Box<DeadLetter>> {
    match schemas::decode::<T>(&raw.payload) {
        Ok(record) => Ok(Envelope {
            partition: raw.partition,
            offset: raw.offset,
            timestamp_ms: raw.timestamp_ms,
            trace: raw.trace(),
            record,
        }),
        Err(e) if T::SECRET => Err(Box::new(DeadLetter {
            payload: Vec::new(),
            reason: format!(
                "{} (the record is withheld: it may hold a secret)",
                e.kind()
            ),
            ..dead_letter(topic, raw, &e)
        })),
        Err(e) => Err(Box::new(dead_letter(topic, raw, &e))),
    }
}

fn dead_letter(topic: &str, raw: RawRecord, e: &DecodeError) -> DeadLetter {
    DeadLetter {
        topic: topic.to_owned(),
        partition: raw.partition,
        offset: raw.offset,
        key: raw.key,
        payload: raw.payload,
        reason: e.to_string(),
        kind: e.kind(),
    }
}

/// Publishes the consumer lag of the partitions a [`StaticConsumer`] owns
/// (`pace_ingest_consumer_lag_records`) from librdkafka's statistics, which
/// it emits every [`STATS_INTERVAL_MS`] while the consumer is polled.
pub struct LagContext {
    topic: String,
}

/// How often a [`StaticConsumer`] refreshes its lag.
pub const STATS_INTERVAL_MS: &str = "1000";

/// Polls in a row that found no record before [`StaticConsumer::poll`]
/// takes the queue for empty: more than the events other than records
/// (a statistics event, a commit result, a log line) that can queue up
/// between two records.
pub const EMPTY_POLLS: usize = 16;

impl ClientContext for LagContext {
    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        let lag = &observability::metrics().ingest_lag;
        for p in topic.partitions.values() {
            if p.partition < 0 || !p.desired || p.hi_offset < 0 {
                continue;
            }
            // Before the first record is read the position is unknown: all
            // that is retained is still to read.
            let position = if p.app_offset >= 0 {
                p.app_offset
            } else {
                p.lo_offset.max(0)
            };
            lag.with_label_values(&[self.topic.as_str(), &p.partition.to_string()])
                .set((p.hi_offset - position).max(0));
        }
    }
}

impl ConsumerContext for LagContext {}

/// The configuration of a [`StaticConsumer`] of `group`.
pub fn source_config(config: &KafkaConfig, group: &str) -> ClientConfig {
    let mut c = config.consumer(group);
    c.set("statistics.interval.ms", STATS_INTERVAL_MS)
        .set("fetch.wait.max.ms", SOURCE_FETCH_WAIT_MS);
    c
}

/// A consumer of the partitions of one topic assigned to one worker.
pub struct StaticConsumer {
    consumer: BaseConsumer<LagContext>,
    topic: String,
    partitions: Vec<i32>,
    /// Next offset to read, per partition (what a commit would store).
    next: BTreeMap<i32, i64>,
    /// Each partition's watermarks when it was assigned.
    opened: BTreeMap<i32, (i64, i64)>,
}

/// How long the broker may hold a [`StaticConsumer`]'s fetch while it has
/// no record to give (it answers as soon as one arrives). librdkafka's
/// default is 500 ms, pace's other consumers ask for 10: a source that
/// asked that often made an idle 2-worker pipeline (18 sources) spend
/// 9.3% of a core and the broker 23.9%; at 500 ms, 3.9% and 6.1%
/// (`benchmarking/RESULTS.md`, 2026-12-07). A request on the consumer's
/// connection to the partition's leader waits behind a held fetch, so a
/// source asks for its watermarks before it is assigned
/// ([`StaticConsumer::opened`]): asked after, each took up to the wait, and
/// a pipeline started late. The group's offsets go to the coordinator, on a
/// connection of its own (`StaticConsumer::behind` answers in about 1 ms).
pub const SOURCE_FETCH_WAIT_MS: &str = "500";

/// How long a consumer waits for its topic to exist.
const TOPIC_WAIT: Duration = Duration::from_secs(30);

impl StaticConsumer {
    /// Assigns `worker`'s partitions of `topic`, positioned at the start of
    /// retention.
    pub fn new(
        config: &KafkaConfig,
        group: &str,
        topic: &str,
        worker: usize,
        workers: usize,
    ) -> Result<Self, IngestError> {
        Self::resuming(config, group, topic, worker, workers, &BTreeMap::new())
    }

    /// [`StaticConsumer::new`] positioned at `from` (next offset to read, per
    /// partition: a snapshot's), and at the start of retention for the
    /// partitions `from` does not name.
    pub fn resuming(
        config: &KafkaConfig,
        group: &str,
        topic: &str,
        worker: usize,
        workers: usize,
        from: &BTreeMap<i32, i64>,
    ) -> Result<Self, IngestError> {
        let consumer: BaseConsumer<LagContext> = source_config(config, group)
            .create_with_context(LagContext {
                topic: topic.to_owned(),
            })
            .map_err(IngestError::kafka("create consumer"))?;
        let count = partition_count(&consumer, topic)?;
        let partitions = assigned_partitions(count, worker, workers);
        let mut tpl = TopicPartitionList::new();
        let mut next = BTreeMap::new();
        let mut opened = BTreeMap::new();
        for p in &partitions {
            // Asked before the assignment: once the consumer fetches, a
            // request waits behind the fetch the broker holds.
            let (low, end) = watermarks(&consumer, topic, *p)?;
            opened.insert(*p, (low, end));
            let offset = match from.get(p) {
                Some(&o) => {
                    if o > end {
                        return Err(IngestError::NotThisTopic {
                            topic: topic.to_owned(),
                            partition: *p,
                            offset: o,
                            end,
                        });
                    }
                    next.insert(*p, o);
                    Offset::Offset(o)
                }
                // The start of retention as the watermarks just gave it:
                // `Beginning` would have the client ask the broker for it,
                // behind the fetch it holds for a partition it already
                // knows where to read (`auto.offset.reset` still applies if
                // retention moves past it meanwhile).
                None => Offset::Offset(low),
            };
            tpl.add_partition_offset(topic, *p, offset)
                .map_err(IngestError::kafka("assign"))?;
        }
        consumer
            .assign(&tpl)
            .map_err(IngestError::kafka("assign"))?;
        Ok(Self {
            consumer,
            topic: topic.to_owned(),
            partitions,
            next,
            opened,
        })
    }

    /// The topic read.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partitions this consumer owns.
    pub fn partitions(&self) -> &[i32] {
        &self.partitions
    }

    /// Calls `wake` (from the client's thread) when records arrive while the
    /// consumer's queue was empty. A caller that stops polling before the queue
    /// is drained must poll again on its own.
    pub fn on_ready(&mut self, wake: impl Fn() + Send + Sync + 'static) {
        self.consumer.set_nonempty_callback(wake);
    }

    /// Up to `max` records that are ready now, without waiting: every
    /// record queued when it is called, up to `max`.
    ///
    /// The queue also carries statistics, logs, commit results and errors,
    /// and rust-rdkafka answers a zero-timeout poll that served one of
    /// those with `None`, as it does for an empty queue. Stopping at the
    /// first `None` would leave the records behind such an event unread, and
    /// since the wake-up ([`StaticConsumer::on_ready`]) comes only when the
    /// queue goes from empty to not empty, none would come for them. So a
    /// `None` or an error is taken for "empty" only after
    /// [`EMPTY_POLLS`] of them in a row.
    pub fn poll(&mut self, max: usize) -> Vec<RawRecord> {
        let mut out = Vec::new();
        let mut empty = 0;
        while out.len() < max && empty < EMPTY_POLLS {
            match self.consumer.poll(Duration::ZERO) {
                None => empty += 1,
                Some(Ok(m)) => {
                    empty = 0;
                    self.next.insert(m.partition(), m.offset() + 1);
                    out.push(RawRecord::read(&m));
                }
                Some(Err(e)) => {
                    empty += 1;
                    tracing::warn!(topic = %self.topic, error = %e, "consumer error");
                }
            }
        }
        out
    }

    /// The next offset to read per partition, for what has been polled so far.
    pub fn positions(&self) -> &BTreeMap<i32, i64> {
        &self.next
    }

    /// The low and high watermarks (first offset held, next offset to be
    /// written) of each partition this consumer owns, when it was assigned.
    pub fn opened(&self) -> &BTreeMap<i32, (i64, i64)> {
        &self.opened
    }

    /// Stops fetching partition `p` until [`StaticConsumer::resume`]; what
    /// the client fetched already is still polled.
    pub fn pause(&self, p: i32) -> Result<(), IngestError> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.topic, p);
        self.consumer
            .pause(&tpl)
            .map_err(IngestError::kafka("pause"))
    }

    /// Fetches every partition again.
    pub fn resume(&self) -> Result<(), IngestError> {
        let mut tpl = TopicPartitionList::new();
        for p in &self.partitions {
            tpl.add_partition(&self.topic, *p);
        }
        self.consumer
            .resume(&tpl)
            .map_err(IngestError::kafka("resume"))
    }

    /// Whether the group's committed offsets are behind `offsets` (next
    /// offset to read, per partition), asking the broker for at most
    /// `timeout`; an answer that does not come counts as behind. An
    /// asynchronous commit can be lost (a group coordinator that moves during
    /// a broker outage), so a caller commits again until this says no.
    pub fn behind(&self, offsets: &BTreeMap<i32, i64>, timeout: Duration) -> bool {
        let mut tpl = TopicPartitionList::new();
        for p in offsets.keys() {
            tpl.add_partition(&self.topic, *p);
        }
        let Ok(got) = self.consumer.committed_offsets(tpl, timeout) else {
            return true;
        };
        offsets.iter().any(|(p, o)| {
            got.find_partition(&self.topic, *p)
                .is_none_or(|e| !matches!(e.offset(), Offset::Offset(c) if c >= *o))
        })
    }

    /// Stores `offsets` (next offset to read, per partition) as the group's
    /// committed offsets; `wait` blocks until the broker has them.
    pub fn commit(&self, offsets: &BTreeMap<i32, i64>, wait: bool) -> Result<(), IngestError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (p, o) in offsets {
            tpl.add_partition_offset(&self.topic, *p, Offset::Offset(*o))
                .map_err(IngestError::kafka("commit"))?;
        }
        self.consumer
            .commit(
                &tpl,
                if wait {
                    CommitMode::Sync
                } else {
                    CommitMode::Async
                },
            )
            .map_err(IngestError::kafka("commit"))
    }
}

/// The low and high watermarks of partition `p` of `topic`, asking again
/// for up to [`TOPIC_WAIT`] while the broker answers with an error (a
/// partition just made has no leader everywhere yet: `NotLeaderForPartition`).
pub(crate) fn watermarks<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    p: i32,
) -> Result<(i64, i64), IngestError> {
    let deadline = Instant::now() + TOPIC_WAIT;
    loop {
        match consumer.fetch_watermarks(topic, p, Duration::from_secs(10)) {
            Ok(w) => return Ok(w),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(topic, partition = p, error = %e, "watermarks not known yet; asking again");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(IngestError::kafka("fetch watermarks")(e)),
        }
    }
}

/// The partitions `topic` has, asking again for up to [`TOPIC_WAIT`]
/// while the broker does not know it yet.
pub(crate) fn partition_count<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
) -> Result<i32, IngestError> {
    let deadline = Instant::now() + TOPIC_WAIT;
    loop {
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .map_err(IngestError::kafka("fetch metadata"))?;
        let n = md
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map_or(0, |t| t.partitions().len() as i32);
        if n > 0 {
            return Ok(n);
        }
        if Instant::now() > deadline {
            return Err(IngestError::NoSuchTopic(topic.to_owned()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::GpsPoint;

    #[test]
    fn partitions_spread_over_workers() {
        assert_eq!(assigned_partitions(4, 0, 1), vec![0, 1, 2, 3]);
        assert_eq!(assigned_partitions(4, 1, 2), vec![1, 3]);
        assert_eq!(assigned_partitions(2, 3, 4), Vec::<i32>::new());
        let all: Vec<i32> = (0..3).flat_map(|w| assigned_partitions(8, w, 3)).collect();
        assert_eq!(all.len(), 8);
    }

    #[test]
    fn bad_record_becomes_dead_letter_with_reason() {
        let raw = RawRecord {
            partition: 2,
            offset: 41,
            key: Some(b"k".to_vec()),
            payload: b"{\"race\":".to_vec(),
            timestamp_ms: None,
            headers: vec![],
        };
        let dl = decode::<GpsPoint>("pace.gps", raw).unwrap_err();
        assert_eq!((dl.partition, dl.offset, dl.kind), (2, 41, "json"));
        assert!(dl.reason.starts_with("malformed JSON"), "{}", dl.reason);
        assert_eq!(dl.payload, b"{\"race\":");
    }
}
