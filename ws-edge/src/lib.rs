//! # pace-ws-edge
//!
//! The HTTP/WebSocket edge. It never touches the dataflow: it rebuilds its
//! views from the changelog topics ([`follow`]), keeps them in a cache
//! ([`views::Views`]), and serves them ([`server`]): JSON over HTTP, and over
//! WebSocket a snapshot followed by deltas, each carrying the view's sequence
//! number. Any number of edges can run side by side; each holds only what it
//! can rebuild from Kafka.
//!
//! Layout: `protocol.rs` every frame, typed (`refusal.rs` the error codes,
//! `viewport.rs` what a window of a race is); `view.rs` the one abstraction
//! every live view is served through; one module per live view, each owning
//! its cache, frames and routes: `race.rs` the races (routes in
//! `race_http.rs`, viewports on a race's ranking in `window.rs`, what
//! the race view sends them in `race_windows.rs`), `rooms.rs` (routes in `rooms_http.rs`) the rooms,
//! `tasks.rs` the task results, `tournaments.rs` the tournament draws;
//! `views.rs` which view serves which subscription; `http.rs` what the HTTP
//! routes share; `follow.rs` the changelog consumer, `server.rs` the
//! routes, `listener.rs` the accept loop and HTTP connections, `table.rs`
//! the open connections, `upgrade.rs` the WebSocket handshake and
//! transport, `shared.rs` what every connection shares, `socket.rs` a
//! spectator's connection, `track.rs` a device's, `post.rs` input through
//! the edge (`decision.rs`: produce, then await the job's decision), `body.rs` request bodies, `auth.rs` tokens, `limits.rs` every
//! bound the edge keeps, `bucket.rs` the rate limiters they use,
//! `gossip.rs` the budgets shared with the other edges, `static/index.html`
//! the spectator page. The protocol is `PROTOCOL.md`.

pub mod auth;
mod body;
pub mod bucket;
pub mod decision;
pub mod follow;
pub mod gossip;
mod http;
pub mod limits;
pub mod listener;
pub mod post;
pub mod protocol;
pub mod race;
mod race_http;
pub mod refusal;
pub mod rooms;
pub mod rooms_http;
pub mod server;
mod shared;
pub mod socket;
pub mod table;
pub mod tasks;
pub mod tournaments;
pub mod track;
pub mod upgrade;
pub mod view;
pub mod viewport;
pub mod views;
pub mod window;

pub use limits::EdgeLimits;
pub use server::{EdgeConfig, serve, serve_metrics, serve_views};

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
}
