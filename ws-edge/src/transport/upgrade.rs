//! A WebSocket connection's transport: the handshake (on the edge's own
//! hyper connection, so the buffers are ours to size), the budget every
//! client frame counts against, and the pings that find clients which stop
//! reading.
//!
//! - Buffers: [`EdgeLimits::ws_read_buffer`] to read; frames are written
//!   as they come, each straight from the `Bytes` its subscribers share
//!   (`wire.rs`), so an idle connection holds no write buffer and a client
//!   that reads nothing cannot make the edge buffer for it.
//! - Budget: every frame the client sends, pings, pongs and closes
//!   included, takes a token of [`EdgeLimits::frames`]; a client over it is
//!   closed (1008). A ping flood costs the edge that many pongs, not memory.
//! - Keepalive: the edge pings every [`EdgeLimits::ping_interval`]; a client
//!   that has not answered the previous ping by the next one (it does not
//!   read, or is gone) is closed (1008). A client's ping is answered by the
//!   connection's writer (the latest one, if several wait).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};
use warp::http::{HeaderMap, HeaderValue, StatusCode};
use warp::{Filter, Rejection, Reply};

use crate::transport::bucket::Bucket;
use crate::transport::limits::EdgeLimits;
use crate::transport::listener::Peer;
pub use crate::transport::wire::{Outbound, WsStream};

/// A request that asks to become a WebSocket, with what the handshake needs.
pub struct Upgrade {
    key: String,
    peer: Peer,
}

/// A request to a WebSocket route that is not a WebSocket handshake.
#[derive(Debug)]
pub(crate) struct NotWebSocket(pub &'static str);

impl warp::reject::Reject for NotWebSocket {}

fn has_token(headers: &HeaderMap, name: &str, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Matches a WebSocket handshake (`GET`, `Connection: upgrade`, `Upgrade:
/// websocket`, version 13, a key); anything else on the route gets 426.
pub fn websocket() -> impl Filter<Extract = (Upgrade,), Error = Rejection> + Clone {
    warp::get()
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<Peer>())
        .and_then(|headers: HeaderMap, peer: Option<Peer>| async move {
            let refuse = |why| Err(warp::reject::custom(NotWebSocket(why)));
            if !has_token(&headers, "connection", "upgrade")
                || !has_token(&headers, "upgrade", "websocket")
            {
                return refuse("this route takes WebSocket connections only");
            }
            if headers
                .get("sec-websocket-version")
                .is_none_or(|v| v.as_bytes() != b"13")
            {
                return refuse("only WebSocket version 13 is spoken here");
            }
            let Some(key) = headers
                .get("sec-websocket-key")
                .and_then(|k| k.to_str().ok())
                .filter(|k| !k.is_empty() && k.len() <= 64)
            else {
                return refuse("the handshake has no Sec-WebSocket-Key");
            };
            let Some(peer) = peer else {
                return refuse("this connection cannot be upgraded");
            };
            Ok(Upgrade {
                key: key.to_owned(),
                peer,
            })
        })
}

impl Upgrade {
    /// Finishes the handshake (101) and runs `connection` on the socket once
    /// the client has it. The connection keeps its place in the table
    /// until `connection` ends.
    pub fn on_upgrade<F, Fut>(self, limits: &EdgeLimits, connection: F) -> warp::reply::Response
    where
        F: FnOnce(WsStream, Outbound) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let Some(on) = self.peer.upgrade.lock().expect("upgrade lock").take() else {
            return crate::transport::http::json_error(
                StatusCode::BAD_REQUEST,
                "this connection was upgraded already".to_owned(),
            );
        };
        let ticket = self.peer.ticket.clone();
        if !ticket.upgraded() {
            return crate::transport::http::json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many connections here; try another edge, or later".to_owned(),
            );
        }
        let config = WebSocketConfig::default()
            .read_buffer_size(limits.ws_read_buffer)
            .max_message_size(Some(limits.max_message))
            .max_frame_size(Some(limits.max_message));
        tokio::spawn(async move {
            let upgraded = match on.await {
                Ok(upgraded) => upgraded,
                Err(e) => return tracing::debug!(error = %e, "upgrade failed"),
            };
            let Some((tcp, read_already)) = crate::transport::listener::into_tcp(upgraded) else {
                return tracing::error!("an upgraded connection is not a TCP stream of ours");
            };
            let (reading, writing) =
                crate::transport::wire::split(tcp, read_already.into(), config).await;
            let m = observability::metrics();
            m.edge_clients.inc();
            connection(reading, writing).await;
            m.edge_clients.dec();
            // The place is given back only now.
            drop(ticket);
        });
        let accept =
            tokio_tungstenite::tungstenite::handshake::derive_accept_key(self.key.as_bytes());
        let mut response = warp::reply().into_response();
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert("connection", HeaderValue::from_static("upgrade"));
        headers.insert("upgrade", HeaderValue::from_static("websocket"));
        if let Ok(accept) = HeaderValue::from_str(&accept) {
            headers.insert("sec-websocket-accept", accept);
        }
        response
    }
}

/// The keepalive state a connection's reader and writer share.
#[derive(Default)]
pub(crate) struct Keepalive {
    waiting: AtomicBool,
    /// The client's latest unanswered ping.
    owed: Mutex<Option<Bytes>>,
    owing: Notify,
}

impl Keepalive {
    /// Called by the writer when it is time to ping: `false` if the previous
    /// ping is still unanswered (close the connection), else the ping to
    /// send.
    pub fn ping(&self) -> Option<Message> {
        if self.waiting.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(Message::Ping(Bytes::from_static(b"pace")))
    }

    fn answered(&self) {
        self.waiting.store(false, Ordering::Release);
    }

    /// The client pinged: the writer owes it a pong.
    fn owe_pong(&self, payload: Bytes) {
        *self.owed.lock().expect("keepalive lock") = Some(payload);
        self.owing.notify_one();
    }

    /// The next pong the writer owes the client.
    pub async fn pong(&self) -> Message {
        loop {
            self.owing.notified().await;
            if let Some(payload) = self.owed.lock().expect("keepalive lock").take() {
                return Message::Pong(payload);
            }
        }
    }
}

/// What a client sent next, after the budget and the control frames.
pub(crate) enum Incoming {
    /// A text frame.
    Text(Utf8Bytes),
    /// A binary frame.
    Binary(Bytes),
    /// The client closed, or went.
    Closed,
    /// The client sent more than its frame budget: close it (1008).
    OverBudget,
    /// The stream broke (a protocol error, an oversized message).
    Failed(tokio_tungstenite::tungstenite::Error),
}

/// A connection's incoming side.
pub(crate) struct Inbound {
    stream: WsStream,
    budget: Bucket,
    keepalive: Arc<Keepalive>,
}

impl Inbound {
    /// The incoming side of a connection within `limits`.
    pub fn new(stream: WsStream, limits: &EdgeLimits, keepalive: Arc<Keepalive>) -> Self {
        Self {
            stream,
            budget: Bucket::new(limits.frames),
            keepalive,
        }
    }

    /// The next data frame. Pings are owed a pong (the writer sends it),
    /// pongs end a keepalive wait; both count against the budget.
    pub async fn next(&mut self) -> Incoming {
        loop {
            let msg = match self.stream.next().await {
                None => return Incoming::Closed,
                Some(Err(e)) => return Incoming::Failed(e),
                Some(Ok(m)) => m,
            };
            if !self.budget.take() {
                let m = observability::metrics();
                m.edge_rate_limited.with_label_values(&["frame"]).inc();
                m.edge_refused.with_label_values(&["frames"]).inc();
                return Incoming::OverBudget;
            }
            match msg {
                Message::Text(t) => return Incoming::Text(t),
                Message::Binary(b) => return Incoming::Binary(b),
                Message::Close(_) => return Incoming::Closed,
                Message::Pong(_) => self.keepalive.answered(),
                Message::Ping(p) => self.keepalive.owe_pong(p),
                Message::Frame(_) => {}
            }
        }
    }
}

impl Inbound {
    /// Reads and drops whatever the client still sends, until it answers
    /// the close (the stream ends) or `within` has passed: a socket closed
    /// with unread input is reset, and the client would lose the close
    /// frame (and its code) on the way.
    pub async fn drain(&mut self, within: std::time::Duration) {
        let _ = tokio::time::timeout(within, async {
            while let Some(Ok(_)) = self.stream.next().await {}
        })
        .await;
    }
}

/// How long a closing connection waits for the client to answer the close.
pub(crate) const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Counts a connection closed for not answering pings.
pub(crate) fn no_pong() {
    tracing::info!("client answered no ping; disconnecting");
    observability::metrics()
        .edge_refused
        .with_label_values(&["keepalive"])
        .inc();
}
