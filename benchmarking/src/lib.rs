//! # pace-benchmarking
//!
//! `pace-bench`, the harness that measures pace from outside, as its users
//! see it: it starts `pace` processes, produces input into a real Kafka,
//! reads the view changelogs and opens WebSocket spectators, and never
//! touches pace's internals. `make bench` runs [`suite`], the standard
//! suite, and prints its table.
//!
//! - [`workload`]: generated races and the recorded ones, into Kafka.
//! - [`process`]: a `pace` process under test, its CPU and memory.
//! - [`throughput`]: the standings job's points/s per worker count, the
//!   consume ceiling and a naive single-threaded baseline.
//! - [`latency`]: produce→view and produce→frame percentiles at a fixed
//!   offered load with many spectators.
//! - [`stages`]: where the pipeline's time goes in a latency run, stage
//!   by stage, per point and per epoch.
//! - [`observers`]: the spectators and the changelog reader that measure
//!   a run from outside.
//! - [`fanout`]: one race's changes to N subscribers on one edge, and
//!   the edge's memory per idle and per subscribed connection.
//! - [`spectators`]: what a spectator watches (a runner, or a race's top-20
//!   window) and which frames it counts.
//! - [`report`]: JSON and Markdown; [`plot`]: the SVG plot.

pub mod fanout;
pub mod latency;
pub mod observers;
pub mod plot;
pub mod process;
pub mod replay;
pub mod report;
pub mod spectators;
pub mod stages;
pub mod suite;
pub mod throughput;
pub mod workload;
