//! What edges tell each other on `pace.edges`: how much of each token
//! subject's budgets an edge gave out lately, so that a subject's budget
//! holds over all edges, not each of them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// How much of each subject's budgets one edge gave out in an interval
/// (keyed by `edge`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeUsage {
    /// The edge (a random id it takes when it starts).
    pub edge: String,
    /// When the interval ended.
    pub at: Timestamp,
    /// Budget name (`posts`, `points`, `refusals`) → subject → tokens taken.
    pub used: BTreeMap<String, BTreeMap<String, u32>>,
}
