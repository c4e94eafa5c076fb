//! # pace-sinks
//!
//! Where pace writes what it computed or refused:
//!
//! - [`archive`]: the archiver, a Kafka consumer that writes every input
//!   topic, the dead letters and every view changelog to Parquet, exactly once;
//! - [`parquet`]: the datasets' Arrow (from `schemas::archive`'s column
//!   lists) and files, written under a temporary
//!   name, fsynced and renamed, so a reader never sees a partial file;
//! - [`verify`]: checks an archive against the topics, offset by offset;
//! - [`compact`]: merges the small files of closed date partitions, swapping
//!   the directory atomically;
//! - [`kafka`]: the dead-letter producer (the reason and origin in headers) and
//!   the view changelog producer, both through ingest's tracked producer so the
//!   runtime knows when they are durable.

pub mod archive;
pub mod compact;
pub mod kafka;
pub mod parquet;
pub mod verify;

/// What went wrong writing a sink.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A file system operation failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Arrow or Parquet refused the data.
    #[error("parquet {path}: {message}")]
    Parquet {
        /// The file.
        path: String,
        /// What the library said.
        message: String,
    },
    /// Another archiver holds the archive.
    #[error("{path} is in use by another archiver (one archiver writes an archive)")]
    Busy {
        /// The archive.
        path: String,
    },
    /// A topic stopped delivering before its end.
    #[error(
        "{topic} partition {partition}: no record past offset {at} in 30 s, though the topic ends at {end}"
    )]
    Stalled {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The next offset expected.
        at: i64,
        /// The partition's end.
        end: i64,
    },
    /// Producing to or reading from Kafka failed.
    #[error(transparent)]
    Kafka(#[from] ingest::IngestError),
}
