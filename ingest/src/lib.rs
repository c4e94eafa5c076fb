//! # pace-ingest
//!
//! Everything that moves records in and out of Kafka, and the readers that turn
//! recorded data into input records. No dataflow here: the timely operators
//! that wrap these types live in `pipeline`.
//!
//! - [`config`]: broker address and client settings shared by every client;
//! - [`admin`]: creating the pace topics;
//! - [`source`]: [`source::StaticConsumer`], a consumer of partitions assigned
//!   statically (no consumer-group rebalancing), decoding and validating each
//!   record into an [`source::Envelope`] or a [`source::DeadLetter`] with a reason;
//! - [`producer`]: [`producer::TrackedProducer`], a producer that tells, per
//!   ticket, when everything sent under it is durable (so offsets are committed
//!   only after what they produced reached Kafka);
//! - [`embedded`]: the embedded broker for `pace run` without `--brokers`;
//! - [`generate`]: the built-in generated race;
//! - [`jsonl`]: replay of JSON-lines files.

pub mod admin;
pub mod config;
pub mod datasets;
pub mod embedded;
pub mod generate;
pub mod jsonl;
pub mod producer;
pub mod reader;
pub mod source;

pub use config::KafkaConfig;

/// What went wrong talking to Kafka or reading input files.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The Kafka client refused or failed an operation.
    #[error("kafka {op}")]
    Kafka {
        /// What pace was doing.
        op: &'static str,
        /// The client's error.
        source: rdkafka::error::KafkaError,
    },
    /// A topic pace needs does not exist or has no partitions.
    #[error("topic {0} does not exist")]
    NoSuchTopic(String),
    /// A partition ends before the offset a snapshot resumes from: the topic
    /// is not the one the snapshot was taken from (it was recreated, or the
    /// brokers are others).
    #[error(
        "{topic} partition {partition} ends at offset {end}, before {offset} where the snapshot resumes: not the topic it was taken from"
    )]
    NotThisTopic {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// Where the snapshot resumes.
        offset: i64,
        /// The partition's end (high watermark).
        end: i64,
    },
    /// A topic was not read to its end in time.
    #[error("{topic} not read to its end within {timeout:?}")]
    NotReadInTime {
        /// The topic.
        topic: String,
        /// How long it was given.
        timeout: std::time::Duration,
    },
    /// A delivery to Kafka failed for good.
    #[error("delivery to {topic} failed: {reason}")]
    Delivery {
        /// Target topic.
        topic: String,
        /// Why.
        reason: String,
    },
    /// Reading an input file failed.
    #[error("reading {path}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A line of an input file is not a valid record.
    #[error("{path}:{line}: {reason}")]
    BadLine {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// Why it was refused.
        reason: String,
    },
}

/// An error and its causes, `outer: inner: innermost`, for logs and dead
/// letters (an error's own `Display` names only what went wrong at its level).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

impl IngestError {
    /// Wraps a client error with what pace was doing (`op`).
    pub fn kafka(op: &'static str) -> impl FnOnce(rdkafka::error::KafkaError) -> Self {
        move |source| IngestError::Kafka { op, source }
    }
}
