//! The dead-letter and changelog producers.

use ingest::producer::{Ticket, TrackedProducer};
use ingest::source::DeadLetter;
use schemas::Topics;
use schemas::topics::{
    DLQ_MAX_PAYLOAD_BYTES, DLQ_OFFSET_HEADER, DLQ_PARTITION_HEADER, DLQ_REASON_HEADER,
    DLQ_TOPIC_HEADER, DLQ_TRUNCATED_HEADER, EPOCH_HEADER, ORIGIN_HEADER,
};

use crate::SinkError;

/// Sends `letter` to the dead-letter topic: the original key and payload byte
/// for byte, the reason and the origin (topic, partition, offset) in headers.
pub fn send_dead_letter(
    producer: &TrackedProducer,
    topics: &Topics,
    letter: &DeadLetter,
    ticket: Ticket,
) -> Result<(), SinkError> {
    let partition = letter.partition.to_string();
    let offset = letter.offset.to_string();
    let size = letter.payload.len().to_string();
    let mut headers = vec![
        (DLQ_REASON_HEADER, letter.reason.as_bytes()),
        (DLQ_TOPIC_HEADER, letter.topic.as_bytes()),
        (DLQ_PARTITION_HEADER, partition.as_bytes()),
        (DLQ_OFFSET_HEADER, offset.as_bytes()),
    ];
    // A huge record is cut, so the dead letter always fits the broker.
    let payload = if letter.payload.len() > DLQ_MAX_PAYLOAD_BYTES {
        headers.push((DLQ_TRUNCATED_HEADER, size.as_bytes()));
        &letter.payload[..DLQ_MAX_PAYLOAD_BYTES]
    } else {
        &letter.payload[..]
    };
    producer.send(
        &topics.dlq,
        letter.key.as_deref(),
        payload,
        &headers,
        ticket,
    )?;
    observability::metrics()
        .dlq_records
        .with_label_values(&[letter.topic.as_str()])
        .inc();
    Ok(())
}

/// Sends one change of `view` (a job's name, the metric label), already
/// encoded as `payload`, to its changelog `topic` under `key`, with the
/// epoch that made it and the origin header when known.
#[allow(clippy::too_many_arguments)]
pub fn send_view_change(
    producer: &TrackedProducer,
    topic: &str,
    view: &str,
    key: &str,
    payload: &[u8],
    epoch: u64,
    origin_ms: Option<i64>,
    ticket: Ticket,
) -> Result<(), SinkError> {
    let origin = origin_ms.map(|ms| ms.to_string());
    let epoch = epoch.to_string();
    let mut headers: Vec<(&str, &[u8])> = vec![(EPOCH_HEADER, epoch.as_bytes())];
    headers.extend(origin.iter().map(|o| (ORIGIN_HEADER, o.as_bytes())));
    producer.send(topic, Some(key.as_bytes()), payload, &headers, ticket)?;
    observability::metrics()
        .view_changes
        .with_label_values(&[view])
        .inc();
    Ok(())
}
