//! Reading chosen partitions rather than a worker's own: [`Reader`] reads
//! partitions of several topics, each from a chosen offset (the archive,
//! its verifier); [`read_to_end`] streams a topic from a point up to the end
//! it has now (the epoch bindings, a restored changelog); [`scan`] reads
//! one partition from an offset until told to stop (a page of history);
//! [`ends`] says where each partition of a topic ends.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::source::{RawRecord, partition_count, watermarks};
use crate::{IngestError, KafkaConfig};

/// Reads chosen partitions of several topics, each from a chosen offset.
/// Nothing is committed unless [`Reader::commit`] says so.
pub struct Reader {
    consumer: BaseConsumer,
    topics: Vec<String>,
}

/// Where a [`Reader`] starts reading a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// At this offset (or the start of retention, if that is later).
    At(i64),
    /// At the group's committed offset, or the start of retention.
    Committed,
}

impl Reader {
    /// Reads `(topic, partition, start)` for each entry of `starts`; `group`
    /// names where committed offsets live.
    pub fn new(
        config: &KafkaConfig,
        group: &str,
        starts: &[(String, i32, Start)],
    ) -> Result<Self, IngestError> {
        let consumer: BaseConsumer = config
            .consumer(group)
            .create()
            .map_err(IngestError::kafka("create consumer"))?;
        let mut reader = Self {
            consumer,
            topics: Vec::new(),
        };
        reader.assign(starts)?;
        Ok(reader)
    }

    /// Reads `starts` from now on, instead of what was read before.
    pub fn assign(&mut self, starts: &[(String, i32, Start)]) -> Result<(), IngestError> {
        let mut tpl = TopicPartitionList::new();
        self.topics.clear();
        for (topic, p, start) in starts {
            let offset = match start {
                Start::At(o) => Offset::Offset(*o),
                Start::Committed => Offset::Stored,
            };
            tpl.add_partition_offset(topic, *p, offset)
                .map_err(IngestError::kafka("assign"))?;
            if !self.topics.contains(topic) {
                self.topics.push(topic.clone());
            }
        }
        self.consumer
            .assign(&tpl)
            .map_err(IngestError::kafka("assign"))
    }

    /// Partitions of `topic`, waiting up to 30 s for it to appear.
    pub fn partitions(&self, topic: &str) -> Result<i32, IngestError> {
        partition_count(&self.consumer, topic)
    }

    /// Up to `max` records, waiting up to `wait` for the first: each with
    /// the index of its topic in the order `new` first saw them.
    pub fn poll(&mut self, max: usize, wait: Duration) -> Vec<(usize, RawRecord)> {
        let mut out = Vec::new();
        let mut timeout = wait;
        while out.len() < max {
            match self.consumer.poll(timeout) {
                None => break,
                Some(Ok(m)) => {
                    if let Some(t) = self.topics.iter().position(|t| t == m.topic()) {
                        out.push((t, RawRecord::read(&m)));
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "consumer error");
                    break;
                }
            }
            timeout = Duration::ZERO;
        }
        out
    }

    /// The topics read, in index order.
    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    /// The low and high watermarks of a partition (first offset held, next
    /// offset to be written).
    pub fn watermarks(&self, topic: &str, partition: i32) -> Result<(i64, i64), IngestError> {
        watermarks(&self.consumer, topic, partition)
    }

    /// The group's committed offsets (next offset to read) of `partitions` of `topic`.
    pub fn committed(
        &self,
        topic: &str,
        partitions: &[i32],
    ) -> Result<BTreeMap<i32, i64>, IngestError> {
        let mut tpl = TopicPartitionList::new();
        for p in partitions {
            tpl.add_partition(topic, *p);
        }
        let got = self
            .consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .map_err(IngestError::kafka("committed offsets"))?;
        Ok(got
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect())
    }

    /// Commits `offset` (the next to read) for `partition` of `topic`, without waiting.
    pub fn commit(&self, topic: &str, partition: i32, offset: i64) -> Result<(), IngestError> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
            .map_err(IngestError::kafka("commit"))?;
        self.consumer
            .commit(&tpl, CommitMode::Async)
            .map_err(IngestError::kafka("commit"))
    }
}

/// The end (high watermark: the next offset to be written) of every
/// partition of `topic`, to read only what comes after now.
pub fn ends(config: &KafkaConfig, topic: &str) -> Result<BTreeMap<i32, i64>, IngestError> {
    let consumer: BaseConsumer = config
        .consumer("pace-watermarks")
        .create()
        .map_err(IngestError::kafka("create consumer"))?;
    let mut out = BTreeMap::new();
    for p in 0..partition_count(&consumer, topic)? {
        let (_, end) = watermarks(&consumer, topic, p)?;
        out.insert(p, end);
    }
    Ok(out)
}

/// The record at `(partition, offset)` of `topic`, if retention still
/// holds it (waiting up to 5 s for the broker).
pub fn read_one(
    config: &KafkaConfig,
    topic: &str,
    (partition, offset): (i32, i64),
) -> Result<Option<RawRecord>, IngestError> {
    let start = [(topic.to_owned(), partition, Start::At(offset))];
    let mut reader = Reader::new(config, "pace-read-one", &start)?;
    let (low, high) = reader.watermarks(topic, partition)?;
    if offset < low || offset >= high {
        return Ok(None);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if let Some((_, raw)) = reader
            .poll(1, Duration::from_millis(200))
            .into_iter()
            .next()
        {
            return Ok((raw.offset == offset).then_some(raw));
        }
    }
    Ok(None)
}

/// How a [`scan`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scanned {
    /// `each` said it had what it needed.
    Done,
    /// The partition's end as it was when the scan began.
    End,
    /// The most records the scan was allowed.
    Max,
}

/// Gives `each` the records of one partition of `topic` from `offset` on
/// (or the start of retention, if that is later), in order, until it says it is done (`true`), the partition's end as it
/// is now, or `max` records; an error if the broker has not given them
/// within `within`. The reading of a page of history (a room's messages, a
/// race's changes) that the live edge no longer holds. Blocking.
pub fn scan(
    config: &KafkaConfig,
    group: &str,
    (topic, partition, offset): (&str, i32, i64),
    (max, within): (usize, Duration),
    mut each: impl FnMut(RawRecord) -> bool,
) -> Result<Scanned, String> {
    let start = [(topic.to_owned(), partition, Start::At(offset))];
    let mut reader = Reader::new(config, group, &start).map_err(|e| e.to_string())?;
    let (_, end) = reader
        .watermarks(topic, partition)
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + within;
    let (mut scanned, mut next) = (0usize, offset);
    while next < end {
        if scanned >= max {
            return Ok(Scanned::Max);
        }
        if Instant::now() > deadline {
            return Err(format!("the changelog did not answer within {within:?}"));
        }
        for (_, raw) in reader.poll(1024, Duration::from_millis(200)) {
            scanned += 1;
            next = raw.offset + 1;
            if each(raw) {
                return Ok(Scanned::Done);
            }
        }
    }
    Ok(Scanned::End)
}

/// Where [`read_to_end`] starts in each partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Since {
    /// At the start of retention.
    Beginning,
    /// At the first record with a Kafka timestamp at or after this (Unix ms).
    Time(i64),
}

/// Gives `each` every record of `topic` from `since` up to the end each
/// partition has now, in offset order per partition, one at a time (a
/// caller keeps only what it needs of them); how many. An error after
/// `timeout`.
pub fn read_to_end(
    config: &KafkaConfig,
    topic: &str,
    since: Since,
    timeout: Duration,
    mut each: impl FnMut(RawRecord),
) -> Result<usize, IngestError> {
    let consumer: BaseConsumer = config
        .consumer("pace-read-to-end")
        .create()
        .map_err(IngestError::kafka("create consumer"))?;
    let mut starts = BTreeMap::new();
    for p in 0..partition_count(&consumer, topic)? {
        let (low, high) = watermarks(&consumer, topic, p)?;
        if high > low {
            starts.insert(p, (low, high));
        }
    }
    if let Since::Time(ms) = since
        && !starts.is_empty()
    {
        let mut query = TopicPartitionList::new();
        for p in starts.keys() {
            query
                .add_partition_offset(topic, *p, Offset::Offset(ms))
                .map_err(IngestError::kafka("offsets for times"))?;
        }
        let found = consumer
            .offsets_for_times(query, Duration::from_secs(10))
            .map_err(IngestError::kafka("offsets for times"))?;
        for e in found.elements() {
            match e.offset() {
                Offset::Offset(o) => {
                    if let Some((low, _)) = starts.get_mut(&e.partition()) {
                        *low = (*low).max(o);
                    }
                }
                // No record that late.
                _ => {
                    starts.remove(&e.partition());
                }
            }
        }
        starts.retain(|_, (low, high)| low < high);
    }
    let mut read = 0;
    if starts.is_empty() {
        return Ok(read);
    }
    let mut tpl = TopicPartitionList::new();
    for (p, (low, _)) in &starts {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*low))
            .map_err(IngestError::kafka("assign"))?;
    }
    consumer
        .assign(&tpl)
        .map_err(IngestError::kafka("assign"))?;
    let deadline = Instant::now() + timeout;
    while !starts.is_empty() {
        if Instant::now() > deadline {
            return Err(IngestError::NotReadInTime {
                topic: topic.to_owned(),
                timeout,
            });
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let p = m.partition();
                let Some(&(_, high)) = starts.get(&p) else {
                    continue;
                };
                if m.offset() < high {
                    read += 1;
                    each(RawRecord::read(&m));
                }
                if m.offset() + 1 >= high {
                    starts.remove(&p);
                }
            }
            Some(Err(e)) => tracing::warn!(topic, error = %e, "consumer error"),
            None => {}
        }
    }
    Ok(read)
}
