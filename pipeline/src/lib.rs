//! # pace-pipeline
//!
//! The dataflow jobs ([`jobs`], each a [`job::Job`]), the worker runtime that runs them over Kafka
//! ([`runtime`]), the hash that routes keys to workers ([`route`]), the snapshots of their state ([`snapshot`]), and the `pace` binary (`src/main.rs`), the composition root
//! that wires the crates together.

pub mod app;
pub mod job;
pub mod jobs;
pub mod route;
pub mod runtime;
pub mod settings;
pub mod snapshot;
