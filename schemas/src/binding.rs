//! [`EpochBinding`]: which input offsets one dataflow epoch covered, as a
//! source records them on [`crate::Topics::bindings`] when it closes the
//! epoch (Materialize calls these reclocking bindings).
//!
//! A record at offset `o` of partition `p` of `topic` belongs to the
//! earliest bound epoch whose end for `p` is past `o`; a record past the
//! last binding of its partition was never read into an epoch that
//! produced output, and a later run gives it a new one. Because bindings
//! are per partition, a run with any number of workers or processes cuts
//! the bound offsets into the same epochs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The end offsets one source reached in one epoch, on the partitions it
/// read in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochBinding {
    /// The input topic.
    pub topic: String,
    /// The epoch (dataflow time, Unix milliseconds).
    pub epoch: u64,
    /// Per partition, the next offset after the epoch's last record.
    pub ends: BTreeMap<i32, i64>,
}
