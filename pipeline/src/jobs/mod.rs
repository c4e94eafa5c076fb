//! The dataflow jobs, as plain functions over differential collections. They
//! know nothing of Kafka or warp, so they are tested on in-memory inputs
//! against sequential references.

pub mod calc;
pub mod standings;
pub mod stash;
