//! A dead letter: a record refused by the pipeline or the edge, on
//! `pace.dlq` with the reason and origin in headers (the names are here),
//! and as the archive's `dead_letters` dataset.

use crate::archive::{Archived, Record, Rows};

/// Kafka header carrying the reason a record was dead-lettered.
pub const DLQ_REASON_HEADER: &str = "pace-dlq-reason";
/// Kafka header carrying the dead letter's source topic.
pub const DLQ_TOPIC_HEADER: &str = "pace-source-topic";
/// Kafka header carrying the dead letter's source partition.
pub const DLQ_PARTITION_HEADER: &str = "pace-source-partition";
/// Kafka header present when a dead letter carries only the first
/// [`DLQ_MAX_PAYLOAD_BYTES`] of its record; its value is the original size.
pub const DLQ_TRUNCATED_HEADER: &str = "pace-truncated-from";
/// Most payload bytes a dead letter carries (the whole record stays in its
/// source topic, at the offset the headers name).
pub const DLQ_MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Kafka header carrying the dead letter's source offset.
pub const DLQ_OFFSET_HEADER: &str = "pace-source-offset";
/// Kafka header naming what refused a record that never reached its topic
/// (`ws-edge`: refused at the edge; partition and offset are then -1).
pub const DLQ_SOURCE_HEADER: &str = "pace-refused-by";

/// A record of `pace.dlq`.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetterRow {
    /// The topic it was refused from.
    pub source_topic: String,
    /// Its partition there (-1: refused by the edge before reaching Kafka).
    pub source_partition: i32,
    /// Its offset there (-1 likewise).
    pub source_offset: i64,
    /// Why.
    pub reason: String,
    /// Who refused it, when not the pipeline (`ws-edge`).
    pub refused_by: Option<String>,
    /// The original size, when the payload was cut.
    pub truncated_from: Option<i64>,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Payload, byte for byte.
    pub payload: Vec<u8>,
}

// A record refused by the pipeline or the edge: the reason, the origin
// (`source_partition`/`source_offset` are -1 for a record the edge refused
// before it reached Kafka), and the payload byte for byte.
crate::dataset!(DeadLetterRow, "dead_letters", |d| [
    id("source_topic", &d.source_topic),
    int32("source_partition", d.source_partition),
    int64("source_offset", d.source_offset),
    text("reason", &d.reason),
    id_or("refused_by", d.refused_by.as_deref()),
    int64_or("truncated_from", d.truncated_from),
    binary_or("key", d.key.as_deref()),
    binary("payload", &d.payload),
]);

impl Archived for DeadLetterRow {
    const DATASETS: &'static [&'static crate::archive::Dataset] =
        &[&<Self as crate::archive::Row>::DATASET];
    fn decode(raw: &impl Record) -> Option<Self> {
        let number = |h| raw.header(h).and_then(|v| v.parse().ok());
        Some(DeadLetterRow {
            source_topic: raw.header(DLQ_TOPIC_HEADER).unwrap_or_default().to_owned(),
            source_partition: number(DLQ_PARTITION_HEADER).unwrap_or(-1) as i32,
            source_offset: number(DLQ_OFFSET_HEADER).unwrap_or(-1),
            reason: raw.header(DLQ_REASON_HEADER).unwrap_or_default().to_owned(),
            refused_by: raw.header(DLQ_SOURCE_HEADER).map(str::to_owned),
            truncated_from: number(DLQ_TRUNCATED_HEADER),
            key: raw.key().map(<[u8]>::to_vec),
            payload: raw.payload().to_vec(),
        })
    }
    fn time_ms(&self) -> Option<i64> {
        None
    }
    fn rows(&self, out: &mut impl Rows) {
        out.push(self);
    }
}
