//! Why the pipeline stopped with an error.

use std::path::PathBuf;

use crate::snapshot::SnapshotError;

/// Why the pipeline stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Setting up or running a worker failed.
    #[error("worker {worker}: {source}")]
    Worker {
        /// Worker index.
        worker: usize,
        /// What failed.
        #[source]
        source: WorkerError,
    },
    /// Timely could not start or a worker thread panicked.
    #[error("timely: {0}")]
    Timely(String),
}

/// What failed in one worker.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The Kafka client refused (broker unreachable, topic missing, …); the
    /// error's chain of causes, as text.
    #[error("{0}")]
    Kafka(String),
    /// A part of the snapshot being restored could not be read: the other
    /// parts alone would give wrong views, so the start stops.
    #[error(
        "snapshot unreadable ({source}); remove {} to rebuild the views from the start of retention",
        dir.display()
    )]
    Snapshot {
        /// The snapshot directory.
        dir: PathBuf,
        /// The part that failed.
        #[source]
        source: SnapshotError,
    },
    /// The broker refused or lost a record a sink produced.
    #[error("delivery failed: {0}")]
    Delivery(String),
}

impl WorkerError {
    /// A Kafka client error, with its causes.
    pub fn kafka(e: &dyn std::error::Error) -> Self {
        Self::Kafka(ingest::error_chain(e))
    }
}
