//! What the task view sends: a task's snapshot and its result.

use schemas::TaskResult;
use serde::Serialize;

/// A task as known.
#[derive(Debug, Serialize)]
#[serde(tag = "view", rename_all = "snake_case")]
pub enum TaskSnapshot<'a> {
    /// A task's result, pending entry or nothing yet (`seq` 1 once done).
    Task {
        /// Task id.
        id: &'a str,
        /// 0 until the result, then 1.
        seq: u64,
        /// What is known.
        result: Option<&'a TaskResult>,
    },
}

/// A task's result.
#[derive(Debug, Serialize)]
#[serde(tag = "view", rename_all = "snake_case")]
pub enum TaskDelta<'a> {
    /// The task's result.
    Task {
        /// Task id.
        id: &'a str,
        /// 1.
        seq: u64,
        /// The result.
        result: &'a TaskResult,
    },
}
