//! # pace-ws-edge
//!
//! The HTTP/WebSocket edge. It never touches the dataflow: it rebuilds its
//! views from the changelog topics ([`follow`]), keeps them in a cache
//! ([`views::Views`]), and serves them ([`server`]): JSON over HTTP, and over
//! WebSocket a snapshot followed by deltas, each carrying the view's sequence
//! number. Any number of edges can run side by side; each holds only what it
//! can rebuild from Kafka.
//!
//! Layout, folder by folder:
//! - [`transport`]: connections as bytes and budgets (accept loop,
//!   connection table, WebSocket handshake, limits, rate limiters, the
//!   budgets shared with other edges), whatever they serve;
//! - [`protocol`]: every frame and error code, typed, and what a window of a
//!   race is; `PROTOCOL.md` describes the same;
//! - [`views`]: the registry of live views ([`views::Views`]), the one
//!   abstraction each is served through ([`views::live::ViewModule`]), and
//!   one folder per view owning its cache, frames, changelogs and routes
//!   (`race/`, `rooms/`, `tasks/`, `tournaments/`);
//! - [`input`]: input through the edge to Kafka, and "produce, then await
//!   the job's decision" ([`input::decision`]); a device's GPS points
//!   ([`input::track`]);
//! - beside them: [`server`] the routes, [`follow`] the changelog consumer,
//!   [`socket`] a spectator's connection, `shared.rs` what every connection
//!   shares, [`auth`] tokens; `static/` the spectator page (`index.html`,
//!   and its scripts by view, served at `/js/`).

pub mod auth;
pub mod follow;
pub mod input;
pub mod issuer;
pub mod protocol;
pub mod server;
mod shared;
pub mod socket;
pub mod transport;
pub mod views;

pub use server::{EdgeConfig, serve, serve_metrics, serve_views};
pub use transport::limits::EdgeLimits;

/// What went wrong at the edge.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// The listen address could not be bound.
    #[error("listen on {addr}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The changelog consumer could not start.
    #[error(transparent)]
    Kafka(#[from] ingest::IngestError),
    /// The outside issuer's key set (`--jwks`) does not read.
    #[error("--jwks: {0}")]
    Issuer(String),
}
