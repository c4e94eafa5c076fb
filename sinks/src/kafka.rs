//! The dead-letter and changelog producers.

use ingest::producer::{Ticket, TrackedProducer};
use ingest::source::DeadLetter;
use schemas::Topics;
use schemas::topics::{EPOCH_HEADER, ORIGIN_HEADER};

use crate::SinkError;

/// Sends `letter` to the dead-letter topic: the original key and payload byte
/// for byte, the reason and the origin (topic, partition, offset) in headers.
pub fn send_dead_letter(
    producer: &TrackedProducer,
    topics: &Topics,
    letter: &DeadLetter,
    ticket: Ticket,
) -> Result<(), SinkError> {
    let (payload, headers) = letter.record(None);
    let headers: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, &v[..])).collect();
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
/// epoch that made it, the origin header when known, and the trace
/// context it carries on (`traceparent`) when it has one.
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
    trace: Option<&str>,
) -> Result<(), SinkError> {
    let origin = origin_ms.map(|ms| ms.to_string());
    let epoch = epoch.to_string();
    let mut headers: Vec<(&str, &[u8])> = vec![(EPOCH_HEADER, epoch.as_bytes())];
    headers.extend(origin.iter().map(|o| (ORIGIN_HEADER, o.as_bytes())));
    headers.extend(trace.map(|t| (observability::traces::HEADER, t.as_bytes())));
    producer.send(topic, Some(key.as_bytes()), payload, &headers, ticket)?;
    observability::metrics()
        .view_changes
        .with_label_values(&[view])
        .inc();
    Ok(())
}
