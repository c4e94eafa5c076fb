//! # pace-sinks
//!
//! Where pace writes what it computed or refused:
//!
//! - [`parquet`]: the Parquet archive ([`parquet::GpsArchive`] for GPS points),
//!   written under a temporary name, fsynced and renamed, so a reader never sees
//!   a partial file;
//! - [`kafka`]: the dead-letter producer (the reason and origin in headers) and
//!   the view changelog producer, both through ingest's tracked producer so the
//!   runtime knows when they are durable.

pub mod kafka;
pub mod parquet;

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
    /// Producing to Kafka failed.
    #[error(transparent)]
    Kafka(#[from] ingest::IngestError),
}
