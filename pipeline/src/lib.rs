//! # pace-pipeline
//!
//! The dataflow jobs ([`jobs`]), the worker runtime that runs them over Kafka
//! ([`runtime`]), and the `pace` binary (`src/main.rs`), the composition root
//! that wires the crates together.

pub mod app;
pub mod jobs;
pub mod runtime;
