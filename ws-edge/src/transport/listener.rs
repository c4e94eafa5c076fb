//! The edge's own accept loop and HTTP/1 connections (hyper), so that no
//! client can hold more than its share of them.
//!
//! Every accepted connection, HTTP or WebSocket, takes a place in the
//! [`Table`] (`table.rs`), at most [`EdgeLimits::connection_budget`] of them (which
//! leaves the process its descriptor reserve, so the archiver, Kafka and
//! snapshots can always open files) and [`EdgeLimits::max_per_address`]
//! from one client address. When the table is full, the connection that has
//! been idle longest (no request in flight: a keep-alive connection between
//! requests, or one whose request head has not arrived) is closed to make
//! room; when none is idle, the newcomer gets a short 503 and is closed.
//! WebSocket connections are never closed to make room.
//!
//! A request head must arrive within [`EdgeLimits::header_timeout`], also
//! on a keep-alive connection between requests (hyper's header timer, which
//! starts when the connection waits for a head); a request must be answered
//! within [`EdgeLimits::request_timeout`]; a connection that moves no byte
//! for [`EdgeLimits::idle_timeout`] is closed. An `accept` that fails for
//! want of descriptors is retried after a pause, never fatal.
//!
//! Requests from one address take from a shared budget
//! ([`EdgeLimits::requests`]); past it they get 429.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower_service::Service;
use tracing::Instrument;
use warp::http::{Request, StatusCode};
use warp::{Filter, Reply};

use crate::transport::bucket::Keyed;
use crate::transport::limits::EdgeLimits;
pub use crate::transport::table::{AddressKey, Busy, Refusal, Table, Ticket};

/// Largest request head (line and headers), bytes; hyper answers 431 past it.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Refusals waiting at once for their client to read the 503 (each holds a
/// descriptor); past that, the 503 is written if the socket takes it at once,
/// and the connection closed.
const REFUSING_AT_ONCE: usize = 128;

/// Who a request came from, for the routes: its address, and the place of
/// its connection (a WebSocket upgrade keeps it).
#[derive(Clone)]
pub struct Peer {
    /// The client's address.
    pub addr: SocketAddr,
    /// The connection's place.
    pub ticket: Ticket,
    /// The connection's upgrade, for a request that asks for one.
    pub upgrade: Arc<Mutex<Option<hyper::upgrade::OnUpgrade>>>,
}

/// A stream that notes when it last moved a byte.
struct Watched {
    stream: TcpStream,
    last: Arc<AtomicU64>,
    epoch: Instant,
}

impl Watched {
    fn moved(&self) {
        self.last.store(millis_since(self.epoch), Ordering::Relaxed);
    }
}

/// Milliseconds since `epoch`.
fn millis_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.moved();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A response body that keeps its connection busy (so not closed to make
/// room) until hyper has written it all and dropped it.
struct Guarded<B> {
    body: B,
    _busy: Busy,
}

impl<B: http_body::Body + Unpin> http_body::Body for Guarded<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// An upgraded connection's TCP stream, with what the HTTP connection had
/// read past the handshake (the client's first frames may have come with
/// it). `None` if the upgrade is not one of this listener's connections.
pub(crate) fn into_tcp(upgraded: hyper::upgrade::Upgraded) -> Option<(TcpStream, bytes::Bytes)> {
    let parts = upgraded.downcast::<TokioIo<Watched>>().ok()?;
    Some((parts.io.into_inner().stream, parts.read_buf))
}

/// The descriptors this process may open (its soft `RLIMIT_NOFILE`), after
/// raising the soft limit to the hard one.
pub fn descriptor_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            limit = raised;
        }
    }
    limit.current
}

/// Whether an `accept` error means the process is out of descriptors or
/// buffers (and will recover when connections go), not a broken listener.
fn out_of_resources(e: &std::io::Error) -> bool {
    use rustix::io::Errno;
    let raw = e.raw_os_error();
    [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM]
        .iter()
        .any(|errno| raw == Some(errno.raw_os_error()))
}

/// Serves `filter` on `listener` within `limits` until `shutdown` resolves;
/// then stops accepting, lets open requests finish (idle connections close
/// at once, WebSocket connections are told through `stopping`), and waits
/// up to [`EdgeLimits::drain`] for every connection to go.
pub async fn serve<F>(
    listener: TcpListener,
    filter: F,
    limits: &EdgeLimits,
    table: Arc<Table>,
    stop_clients: watch::Sender<bool>,
    shutdown: impl Future<Output = ()>,
) where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: Reply,
{
    let requests = Arc::new(Keyed::<AddressKey>::new(
        limits.requests,
        limits.budget_keys,
    ));
    let refusing = Arc::new(Semaphore::new(REFUSING_AT_ONCE));
    let epoch = Instant::now();
    let mut warned: Option<Instant> = None;
    let service = warp::service(filter);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            a = listener.accept() => a,
        };
        let (stream, addr) = match accepted {
            Ok(a) => a,
            Err(e) if out_of_resources(&e) => {
                observability::metrics()
                    .edge_refused
                    .with_label_values(&["descriptors"])
                    .inc();
                if warned.is_none_or(|w| w.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(error = %e, open = table.open(), "accept failed; retrying");
                    warned = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => {
                tracing::debug!(error = %e, "accept failed");
                continue;
            }
        };
        let proxy = limits.trusted_proxies.contains(addr.ip());
        let ticket = match table.admit(addr.ip().into(), proxy) {
            Ok(t) => t,
            Err(refusal) => {
                observability::metrics()
                    .edge_refused
                    .with_label_values(&[refusal.reason()])
                    .inc();
                match refusing.clone().try_acquire_owned() {
                    Ok(permit) => {
                        tokio::spawn(async move {
                            refuse(stream, refusal).await;
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        let _ = stream.try_write(refusal_response(refusal).as_bytes());
                    }
                }
                continue;
            }
        };
        let conn = Connection {
            stream,
            addr,
            ticket,
            limits: limits.clone(),
            requests: requests.clone(),
            epoch,
        };
        tokio::spawn(conn.run(service.clone(), stop_clients.subscribe()));
    }
    drop(listener);
    let _ = stop_clients.send(true);
    tracing::info!(
        open = table.open(),
        "edge stopping; asking clients to reconnect"
    );
    table.drained(limits.drain).await;
    tracing::info!(left = table.open(), "clients drained");
}

/// The 503 a refused connection gets.
fn refusal_response(refusal: Refusal) -> String {
    let body = serde_json::json!({ "error": refusal.message() }).to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Tells a client it was not let in, then closes.
async fn refuse(mut stream: TcpStream, refusal: Refusal) {
    let response = refusal_response(refusal);
    let write = async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        // Read what the client sent before closing, so that the close does
        // not reset the connection before the client has read the answer.
        let mut sink = [0u8; 4096];
        let mut read = 0;
        while read < 64 * 1024 {
            stream.readable().await?;
            match stream.try_read(&mut sink) {
                Ok(0) => break,
                Ok(n) => read += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        std::io::Result::Ok(())
    };
    let _ = tokio::time::timeout(Duration::from_millis(500), write).await;
}

/// The span of one request: named by its method and the first two
/// segments of its path (`POST /api/tasks`: few names, whatever the ids),
/// a child of the client's trace if it sent a `traceparent`.
fn request_span(req: &Request<Incoming>) -> tracing::Span {
    let path = req.uri().path();
    let route: String = path.split('/').take(3).collect::<Vec<_>>().join("/");
    let parent = (req.headers().get(observability::traces::HEADER))
        .and_then(|v| v.to_str().ok())
        .and_then(observability::traces::TraceParent::parse);
    observability::traces::child(
        tracing::info_span!(
            "http.request",
            otel.name = %format_args!("{} {route}", req.method()),
            otel.kind = "server",
            http.request.method = %req.method(),
            url.path = path,
            http.response.status_code = tracing::field::Empty,
        ),
        parent.as_ref(),
    )
}

/// One accepted connection.
struct Connection {
    stream: TcpStream,
    addr: SocketAddr,
    ticket: Ticket,
    limits: EdgeLimits,
    requests: Arc<Keyed<AddressKey>>,
    epoch: Instant,
}

impl Connection {
    async fn run<S>(self, service: S, mut stopping: watch::Receiver<bool>)
    where
        S: Service<
                Request<Incoming>,
                Response = warp::reply::Response,
                Error = std::convert::Infallible,
            > + Clone
            + Send
            + 'static,
        S::Future: Send,
    {
        let Connection {
            stream,
            addr,
            ticket,
            limits,
            requests,
            epoch,
        } = self;
        // Moved at the accept: a connection is not idle before it had a chance.
        let last = Arc::new(AtomicU64::new(millis_since(epoch)));
        let io = TokioIo::new(Watched {
            stream,
            last: last.clone(),
            epoch,
        });
        let peer_ticket = ticket.clone();
        let request_timeout = limits.request_timeout;
        let trusted = limits.trusted_proxies.clone();
        let handler = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let mut service = service.clone();
            let busy = peer_ticket.busy();
            // Behind a trusted proxy, the client it names.
            let forwarded = (req.headers().get("x-forwarded-for")).and_then(|v| v.to_str().ok());
            let client = SocketAddr::new(trusted.client(addr.ip(), forwarded), addr.port());
            let allowed = requests.take(&client.ip().into());
            let upgrade = wants_upgrade(&req).then(|| hyper::upgrade::on(&mut req));
            let span = request_span(&req);
            req.extensions_mut().insert(Peer {
                addr: client,
                ticket: peer_ticket.clone(),
                upgrade: Arc::new(Mutex::new(upgrade)),
            });
            async move {
                let response = if allowed {
                    match tokio::time::timeout(request_timeout, service.call(req)).await {
                        Ok(Ok(r)) => r,
                        Ok(Err(never)) => match never {},
                        Err(_) => {
                            observability::metrics()
                                .edge_refused
                                .with_label_values(&["request_timeout"])
                                .inc();
                            crate::transport::http::json_error(
                                StatusCode::SERVICE_UNAVAILABLE,
                                format!("the request took longer than {request_timeout:?}"),
                            )
                        }
                    }
                } else {
                    observability::metrics()
                        .edge_rate_limited
                        .with_label_values(&["request"])
                        .inc();
                    let mut r = crate::transport::http::json_error(
                        StatusCode::TOO_MANY_REQUESTS,
                        "too many requests from your address; slow down".to_owned(),
                    );
                    r.headers_mut()
                        .insert("retry-after", warp::http::HeaderValue::from_static("1"));
                    r
                };
                tracing::Span::current()
                    .record("http.response.status_code", response.status().as_u16());
                // Busy until the body is written, not only until it is made.
                Ok::<_, std::convert::Infallible>(
                    response.map(|body| Guarded { body, _busy: busy }),
                )
            }
            .instrument(span)
        });
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .max_buf_size(MAX_HEAD_BYTES.max(8192))
            .keep_alive(true);
        let conn = builder.serve_connection(io, handler).with_upgrades();
        tokio::pin!(conn);
        let period = (limits.idle_timeout / 4).max(Duration::from_millis(10));
        let mut check = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut stopping_now = *stopping.borrow();
        if stopping_now {
            conn.as_mut().graceful_shutdown();
        }
        let m = observability::metrics();
        loop {
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        if e.is_timeout() {
                            m.edge_refused.with_label_values(&["header_timeout"]).inc();
                        }
                        tracing::debug!(error = %e, "connection ended");
                    }
                    break;
                }
                () = ticket.evicted() => {
                    m.edge_refused.with_label_values(&["evicted"]).inc();
                    break;
                }
                changed = stopping.changed(), if !stopping_now => {
                    if changed.is_err() || *stopping.borrow() {
                        stopping_now = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
                _ = check.tick() => {
                    let idle_ms = millis_since(epoch).saturating_sub(last.load(Ordering::Relaxed));
                    if Duration::from_millis(idle_ms) >= limits.idle_timeout && !ticket.is_upgraded() {
                        m.edge_refused.with_label_values(&["idle"]).inc();
                        break;
                    }
                }
            }
        }
    }
}

/// Whether a request asks to become a WebSocket (`Connection: upgrade`).
fn wants_upgrade<B>(req: &Request<B>) -> bool {
    req.headers()
        .get_all(warp::http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}
