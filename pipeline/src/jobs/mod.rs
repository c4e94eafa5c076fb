//! The dataflow jobs, as plain functions over differential collections. They
//! know nothing of Kafka or warp, so they are tested on in-memory inputs
//! against sequential references; each also implements [`crate::job::Job`] beside it
//! (its inputs, checkpoints and change encoding), and [`JOBS`] is every job
//! the runtime runs.

pub mod accounts;
pub mod calc;
pub mod calc_results;
pub mod fold;
pub mod rooms;
pub mod standings;
pub mod stash;
pub mod tournaments;

use std::path::PathBuf;

use ingest::KafkaConfig;

pub use crate::runtime::Wire;
use crate::runtime::{PipelineConfig, wire};

/// Every job the pipeline runs, in the order each worker builds them. A new
/// job is one line here.
pub const JOBS: &[Wire] = &[
    wire::<standings::Standings>,
    wire::<rooms::Rooms>,
    wire::<calc_results::Results>,
    wire::<tournaments::Tournaments>,
    wire::<accounts::Accounts>,
];

pub use crate::route::hash;

impl PipelineConfig {
    /// Defaults for `kafka`, running every job of [`JOBS`]. (Written here,
    /// beside the registry, so that the runtime depends on no job.)
    pub fn new(kafka: KafkaConfig, workers: usize, data_dir: PathBuf) -> Self {
        Self::with_jobs(kafka, workers, data_dir, JOBS)
    }
}
