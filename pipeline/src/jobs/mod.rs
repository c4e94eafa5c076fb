//! The dataflow jobs, as plain functions over differential collections. They
//! know nothing of Kafka or warp, so they are tested on in-memory inputs
//! against sequential references.

pub mod calc;
pub mod calc_results;
pub mod rooms;
pub mod standings;
pub mod stash;

/// A stable hash, for routing records to workers.
pub fn hash<H: std::hash::Hash>(h: &H) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(h)
}
