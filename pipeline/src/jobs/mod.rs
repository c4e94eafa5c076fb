//! The dataflow jobs, as plain functions over differential collections. They
//! know nothing of Kafka or warp, so they are tested on in-memory inputs
//! against sequential references; each also implements [`crate::job::Job`] beside it
//! (its inputs, checkpoints and change encoding), and [`JOBS`] is every job
//! the runtime runs.

pub mod calc;
pub mod calc_results;
pub mod fold;
pub mod rooms;
pub mod standings;
pub mod stash;
pub mod tournaments;

use crate::runtime::{Inputs, wire};

/// Wires one job into a worker's dataflow.
pub type Wire = fn(&mut Inputs<'_>);

/// Every job the pipeline runs, in the order each worker builds them. A new
/// job is one line here.
pub const JOBS: &[Wire] = &[
    wire::<standings::Standings>,
    wire::<rooms::Rooms>,
    wire::<calc_results::Results>,
    wire::<tournaments::Tournaments>,
];

/// A stable hash, for routing records to workers.
pub fn hash<H: std::hash::Hash>(h: &H) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(h)
}
