//! Every bound the edge keeps, in one place: what a connection, a client
//! address and a token's subject may hold and send. Whatever a client sends
//! counts against one of these budgets; past one, it gets a clear refusal
//! (an HTTP status, an error frame, a close code), never an unbounded queue.
//!
//! | bound | per | default | past it |
//! | --- | --- | --- | --- |
//! | [`max_connections`](EdgeLimits::max_connections) | edge (HTTP and WebSocket together) | 20,000, and never more than the descriptor limit leaves after [`descriptor_reserve`](EdgeLimits::descriptor_reserve) | the longest-idle HTTP connection is closed to make room; if none is idle, 503 |
//! | [`max_per_address`](EdgeLimits::max_per_address) | client address (IPv6: its /64) | 1,000 | 503 |
//! | [`header_timeout`](EdgeLimits::header_timeout) | request, and a keep-alive connection between requests | 10 s | the connection is closed |
//! | [`request_timeout`](EdgeLimits::request_timeout) | request (body included) | 30 s | 503 |
//! | [`idle_timeout`](EdgeLimits::idle_timeout) | HTTP connection with no byte read or written | 60 s | the connection is closed |
//! | [`requests`](EdgeLimits::requests) | client address | 500 at once, 200/s | 429 |
//! | [`frames`](EdgeLimits::frames) | WebSocket connection, any frame (pings, pongs and closes too) | 500 at once, 100/s | close 1008 |
//! | [`ping_interval`](EdgeLimits::ping_interval) | WebSocket connection | 20 s | a client that has not answered the previous ping is closed (1008) |
//! | [`posts`](EdgeLimits::posts) | token subject: posts, joins, leaves, creates, invites, going online in a room | 10 at once, 5/s | `rate_limited` |
//! | [`points`](EdgeLimits::points) | token subject | 200 at once, 50/s | `rate_limited` |
//! | [`refusals`](EdgeLimits::refusals) | token subject | 20 at once, 2/s dead-lettered | `rate_limited`, not dead-lettered; then close 1008 |
//! | [`tasks`](EdgeLimits::tasks) | client address | 100 at once, 20/s | 429 |
//! | [`logins_per_address`](EdgeLimits::logins_per_address) | client address: registers and logins (each hashes a password) | 30 at once, 1/s | 429 |
//! | [`logins_per_user`](EdgeLimits::logins_per_user) | user name: logins | 5 at once, 1 per 10 s | 429, no password checked |

use std::time::Duration;

use crate::transport::bucket::Rate;

/// What bounds the edge's use of memory, sockets and descriptors.
#[derive(Clone, Debug)]
pub struct EdgeLimits {
    /// Open connections at most, HTTP and WebSocket together. The edge holds
    /// fewer if the descriptor limit (`ulimit -n`) minus
    /// [`descriptor_reserve`](Self::descriptor_reserve) is lower.
    pub max_connections: usize,
    /// Open connections from one client address at most (`0`: no limit).
    pub max_per_address: usize,
    /// Descriptors kept for everything but client connections (Kafka, the
    /// archive, snapshots): `None` for an eighth of the limit, at least 256.
    pub descriptor_reserve: Option<usize>,
    /// A request's head must arrive within this; an idle keep-alive
    /// connection is closed after it.
    pub header_timeout: Duration,
    /// A request must be answered within this, its body read included.
    pub request_timeout: Duration,
    /// An HTTP connection that reads and writes nothing for this long is
    /// closed (a client that does not read its response, say).
    pub idle_timeout: Duration,
    /// Requests per client address.
    pub requests: Rate,
    /// Frames a WebSocket client may send (any frame: text, binary, ping,
    /// pong, close).
    pub frames: Rate,
    /// How often the edge pings a WebSocket client; one that has not
    /// answered the previous ping by the next is closed.
    pub ping_interval: Duration,
    /// Room events per token subject (posts, joins, leaves, creates,
    /// invites, going online), over all its connections.
    pub posts: Rate,
    /// GPS points per token subject, over all its connections.
    pub points: Rate,
    /// Refused points dead-lettered per token subject; past it a refused
    /// point only gets its error frame, and a connection that keeps going
    /// is closed.
    pub refusals: Rate,
    /// Tasks submitted per client address.
    pub tasks: Rate,
    /// Registers and logins per client address (each hashes a password).
    pub logins_per_address: Rate,
    /// Logins per user name, on this edge.
    pub logins_per_user: Rate,
    /// Keys each per-subject or per-address budget remembers at most.
    pub budget_keys: usize,
    /// Frames queued per WebSocket connection at most.
    pub client_queue: usize,
    /// Subscriptions per connection at most.
    pub max_subscriptions: usize,
    /// A client that takes no frame for this long is disconnected.
    pub write_timeout: Duration,
    /// The kernel send buffer of each connection, bytes (`None`: the
    /// system's autotuning, which may grow to megabytes per socket).
    pub socket_send_buffer: Option<usize>,
    /// The WebSocket read buffer of each connection, bytes: what it holds
    /// while idle (client frames are small; a bigger message grows it for
    /// as long as it is read).
    pub ws_read_buffer: usize,
    /// Largest message a client may send, bytes.
    pub max_message: usize,
    /// How long a graceful shutdown waits for clients to go.
    pub drain: Duration,
    /// Proxies whose `X-Forwarded-For` names the client whose address
    /// budgets count.
    pub trusted_proxies: crate::transport::proxies::TrustedProxies,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        Self {
            max_connections: 20_000,
            max_per_address: 1_000,
            descriptor_reserve: None,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            requests: Rate::new(500.0, 200.0),
            frames: Rate::new(500.0, 100.0),
            ping_interval: Duration::from_secs(20),
            posts: Rate::new(10.0, 5.0),
            points: Rate::new(200.0, 50.0),
            refusals: Rate::new(20.0, 2.0),
            tasks: Rate::new(100.0, 20.0),
            logins_per_address: Rate::new(30.0, 1.0),
            logins_per_user: Rate::new(5.0, 0.1),
            budget_keys: 100_000,
            client_queue: 64,
            max_subscriptions: 64,
            write_timeout: Duration::from_secs(30),
            socket_send_buffer: Some(128 * 1024),
            ws_read_buffer: 512,
            max_message: 64 * 1024,
            drain: Duration::from_secs(5),
            trusted_proxies: Default::default(),
        }
    }
}

impl EdgeLimits {
    /// The connections this edge holds at most when the process may open
    /// `descriptors` files: [`max_connections`](Self::max_connections), or
    /// fewer, so that the rest of the process always has its reserve.
    pub fn connection_budget(&self, descriptors: Option<u64>) -> usize {
        let Some(limit) = descriptors.and_then(|d| usize::try_from(d).ok()) else {
            return self.max_connections;
        };
        let reserve = self.descriptor_reserve.unwrap_or((limit / 8).max(256));
        self.max_connections
            .min(limit.saturating_sub(reserve))
            .max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_descriptor_limit_caps_connections_with_a_reserve() {
        let l = EdgeLimits::default();
        assert_eq!(l.connection_budget(None), 20_000);
        assert_eq!(l.connection_budget(Some(4096)), 4096 - 512);
        assert_eq!(l.connection_budget(Some(1024)), 1024 - 256);
        assert_eq!(l.connection_budget(Some(1 << 20)), 20_000);
        assert_eq!(l.connection_budget(Some(100)), 1);
        let l = EdgeLimits {
            descriptor_reserve: Some(96),
            ..l
        };
        assert_eq!(l.connection_budget(Some(4096)), 4000);
    }
}
