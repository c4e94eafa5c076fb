//! # pace-benchmarking
//!
//! `pace-bench`, the harness that drives pace from outside, as a user would:
//! it produces input into Kafka and watches the view changelogs, never
//! touching pace's internals. `run.sh` (called by `make bench`) starts the
//! pipeline with 1 and 2 workers against a real broker and prints a table.
//!
//! [`standings`] measures end-to-end standings throughput: a generated race
//! is produced as fast as possible, and the clock stops when the standings
//! changelog reflects every participant's last point. The raw consume rate of
//! the same topic, with no processing, is measured beside it as the ceiling.

pub mod standings;
