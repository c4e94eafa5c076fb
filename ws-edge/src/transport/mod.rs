//! Connections as bytes and budgets, whatever view they serve: the accept
//! loop and HTTP connections (`listener.rs`), the open connections
//! (`table.rs`), the WebSocket handshake and keepalive (`upgrade.rs`), a
//! WebSocket's two directions on the socket's halves (`wire.rs`), what the
//! HTTP routes share (`http.rs`), every bound the edge keeps (`limits.rs`),
//! the rate limiters they use (`bucket.rs`) and the budgets shared with the
//! other edges (`gossip.rs`).

pub mod bucket;
pub mod gossip;
pub mod http;
pub mod limits;
pub mod listener;
pub mod proxies;
pub mod table;
pub mod upgrade;
pub mod wire;
