//! The edge's own accept loop and HTTP/1 connections (hyper), so that no
//! client can hold more than its share of them.
//!
//! Every accepted connection, HTTP or WebSocket, takes a place in the
//! [`Table`], at most [`EdgeLimits::connection_budget`] of them (which
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

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
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
use tokio::sync::{Notify, Semaphore, watch};
use tower_service::Service;
use warp::http::{Request, StatusCode};
use warp::{Filter, Reply};

use crate::bucket::Keyed;
use crate::limits::EdgeLimits;

/// Largest request head (line and headers), bytes; hyper answers 431 past it.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Refusals waiting at once for their client to read the 503 (each holds a
/// descriptor); past that, the 503 is written if the socket takes it at once,
/// and the connection closed.
const REFUSING_AT_ONCE: usize = 128;

/// A client address as the per-address limits see it: IPv4 as it is, IPv6
/// by its /64 (one host usually holds a whole /64).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddressKey(IpAddr);

impl From<IpAddr> for AddressKey {
    fn from(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !u128::from(u64::MAX);
                AddressKey(IpAddr::V6(prefix.into()))
            }
            v4 => AddressKey(v4),
        }
    }
}

/// Why a connection was not let in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Every place is taken by a connection that is not idle.
    Full,
    /// Its address holds its share already.
    Address,
}

impl Refusal {
    fn reason(self) -> &'static str {
        match self {
            Refusal::Full => "limit",
            Refusal::Address => "address",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Refusal::Full => "too many connections here; try another edge, or later",
            Refusal::Address => "too many connections from your address",
        }
    }
}

/// The open connections.
pub struct Table {
    budget: usize,
    per_address: usize,
    state: Mutex<State>,
    /// Signalled whenever a connection goes.
    gone: Notify,
}

#[derive(Default)]
struct State {
    next_id: u64,
    next_idle: u64,
    open: usize,
    /// Connections told to go that have not gone yet.
    evicting: usize,
    per_address: HashMap<AddressKey, usize>,
    /// Idle connections by when they became idle (a counter), oldest first.
    idle: BTreeMap<u64, u64>,
    conns: HashMap<u64, Entry>,
}

struct Entry {
    address: AddressKey,
    busy: u32,
    idle_key: Option<u64>,
    upgraded: bool,
    /// Told to go (to make room), not gone yet.
    evicted: bool,
    evict: Arc<Notify>,
}

impl Table {
    /// A table of at most `budget` connections, `per_address` from one
    /// address (`0`: no such limit).
    pub fn new(budget: usize, per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            budget: budget.max(1),
            per_address,
            state: Mutex::new(State::default()),
            gone: Notify::new(),
        })
    }

    /// The most connections held at once.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.state.lock().expect("table lock").open
    }

    /// A place for a connection from `address`, closing the longest-idle
    /// connection if every place is taken.
    pub fn admit(self: &Arc<Self>, address: AddressKey) -> Result<Ticket, Refusal> {
        let mut s = self.state.lock().expect("table lock");
        let from_here = s.per_address.get(&address).copied().unwrap_or(0);
        if self.per_address > 0 && from_here >= self.per_address {
            return Err(Refusal::Address);
        }
        if s.open - s.evicting >= self.budget {
            let Some((_, victim)) = s.idle.pop_first() else {
                return Err(Refusal::Full);
            };
            let entry = s.conns.get_mut(&victim).expect("idle entries exist");
            entry.idle_key = None;
            entry.evicted = true;
            entry.evict.notify_one();
            s.evicting += 1;
        }
        let id = s.next_id;
        s.next_id += 1;
        let idle_key = s.next_idle;
        s.next_idle += 1;
        s.idle.insert(idle_key, id);
        s.open += 1;
        *s.per_address.entry(address).or_default() += 1;
        let evict = Arc::new(Notify::new());
        s.conns.insert(
            id,
            Entry {
                address,
                busy: 0,
                idle_key: Some(idle_key),
                upgraded: false,
                evicted: false,
                evict: evict.clone(),
            },
        );
        observability::metrics().edge_connections.inc();
        Ok(Ticket(Arc::new(Place {
            table: self.clone(),
            id,
            evict,
        })))
    }

    /// Resolves once no connection is open, or after `within`.
    pub async fn drained(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let gone = self.gone.notified();
            if self.open() == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, gone).await.is_err() {
                return;
            }
        }
    }

    fn with_entry(&self, id: u64, f: impl FnOnce(&mut State, u64)) {
        let mut s = self.state.lock().expect("table lock");
        if s.conns.contains_key(&id) {
            f(&mut s, id);
        }
    }
}

/// A connection's place in the [`Table`]; the place is given back when the
/// last clone is dropped (by the HTTP connection, or by the WebSocket
/// connection it became).
#[derive(Clone)]
pub struct Ticket(Arc<Place>);

struct Place {
    table: Arc<Table>,
    id: u64,
    evict: Arc<Notify>,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut s = self.table.state.lock().expect("table lock");
        if let Some(e) = s.conns.remove(&self.id) {
            if let Some(k) = e.idle_key {
                s.idle.remove(&k);
            }
            if e.evicted {
                s.evicting -= 1;
            }
            s.open -= 1;
            if let Some(n) = s.per_address.get_mut(&e.address) {
                *n -= 1;
                if *n == 0 {
                    s.per_address.remove(&e.address);
                }
            }
        }
        drop(s);
        observability::metrics().edge_connections.dec();
        self.table.gone.notify_waiters();
    }
}

impl Ticket {
    /// Marks a request in flight until the guard drops: the connection is
    /// not idle meanwhile, so it is not closed to make room.
    pub fn busy(&self) -> Busy {
        self.0.table.with_entry(self.0.id, |s, id| {
            let e = s.conns.get_mut(&id).expect("checked");
            e.busy += 1;
            if let Some(k) = e.idle_key.take() {
                s.idle.remove(&k);
            }
        });
        Busy(self.clone())
    }

    /// Marks the connection a WebSocket: never closed to make room.
    pub fn upgraded(&self) {
        self.0.table.with_entry(self.0.id, |s, id| {
            let e = s.conns.get_mut(&id).expect("checked");
            e.upgraded = true;
            if let Some(k) = e.idle_key.take() {
                s.idle.remove(&k);
            }
        });
    }

    fn is_upgraded(&self) -> bool {
        let s = self.0.table.state.lock().expect("table lock");
        s.conns.get(&self.0.id).is_some_and(|e| e.upgraded)
    }

    /// Resolves when the table wants this connection gone.
    async fn evicted(&self) {
        self.0.evict.notified().await;
    }
}

/// A request in flight (see [`Ticket::busy`]).
pub struct Busy(Ticket);

impl Drop for Busy {
    fn drop(&mut self) {
        let place = &(self.0).0;
        place.table.with_entry(place.id, |s, id| {
            let next = s.next_idle;
            let e = s.conns.get_mut(&id).expect("checked");
            e.busy -= 1;
            if e.busy == 0 && !e.upgraded && !e.evicted && e.idle_key.is_none() {
                e.idle_key = Some(next);
                s.next_idle += 1;
                s.idle.insert(next, id);
            }
        });
    }
}

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
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }
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

/// The upgraded stream of a WebSocket connection.
pub type Upgraded = TokioIo<hyper::upgrade::Upgraded>;

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
        let ticket = match table.admit(addr.ip().into()) {
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
        let last = Arc::new(AtomicU64::new(0));
        let io = TokioIo::new(Watched {
            stream,
            last: last.clone(),
            epoch,
        });
        let peer_ticket = ticket.clone();
        let request_timeout = limits.request_timeout;
        let handler = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let mut service = service.clone();
            let busy = peer_ticket.busy();
            let allowed = requests.take(&addr.ip().into());
            let upgrade = wants_upgrade(&req).then(|| hyper::upgrade::on(&mut req));
            req.extensions_mut().insert(Peer {
                addr,
                ticket: peer_ticket.clone(),
                upgrade: Arc::new(Mutex::new(upgrade)),
            });
            async move {
                let _busy = busy;
                if !allowed {
                    observability::metrics()
                        .edge_rate_limited
                        .with_label_values(&["request"])
                        .inc();
                    let mut r = crate::server::json_error(
                        StatusCode::TOO_MANY_REQUESTS,
                        "too many requests from your address; slow down".to_owned(),
                    );
                    r.headers_mut()
                        .insert("retry-after", warp::http::HeaderValue::from_static("1"));
                    return Ok::<_, std::convert::Infallible>(r);
                }
                match tokio::time::timeout(request_timeout, service.call(req)).await {
                    Ok(r) => r,
                    Err(_) => {
                        observability::metrics()
                            .edge_refused
                            .with_label_values(&["request_timeout"])
                            .inc();
                        Ok(crate::server::json_error(
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("the request took longer than {request_timeout:?}"),
                        ))
                    }
                }
            }
        });
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .max_buf_size(MAX_HEAD_BYTES.max(8192))
            .keep_alive(true);
        let conn = builder.serve_connection(io, handler).with_upgrades();
        tokio::pin!(conn);
        let mut check =
            tokio::time::interval((limits.idle_timeout / 4).max(Duration::from_millis(10)));
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
                    let idle_ms = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
                        .saturating_sub(last.load(Ordering::Relaxed));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> AddressKey {
        s.parse::<IpAddr>().unwrap().into()
    }

    #[test]
    fn ipv6_addresses_count_by_their_64() {
        assert_eq!(key("2001:db8::1"), key("2001:db8::ffff:1"));
        assert_ne!(key("2001:db8::1"), key("2001:db8:0:1::1"));
        assert_eq!(key("::ffff:10.0.0.1"), key("10.0.0.1"));
        assert_ne!(key("10.0.0.1"), key("10.0.0.2"));
    }

    #[test]
    fn a_full_table_closes_its_longest_idle_connection() {
        let t = Table::new(3, 2);
        let a = t.admit(key("10.0.0.1")).unwrap();
        let b = t.admit(key("10.0.0.1")).unwrap();
        assert_eq!(t.admit(key("10.0.0.1")).err(), Some(Refusal::Address));
        let c = t.admit(key("10.0.0.2")).unwrap();
        // a is busy, b is a WebSocket: c is the only idle one, and goes.
        let busy = a.busy();
        b.upgraded();
        let d = t.admit(key("10.0.0.3")).unwrap();
        assert!(c.0.evict.notified().now_or_never_ready());
        // Every place is busy now, or a WebSocket, or already told to go.
        let busy_d = d.busy();
        assert_eq!(t.admit(key("10.0.0.4")).err(), Some(Refusal::Full));
        drop(c);
        assert_eq!(t.open(), 3);
        // a's request ends: a is idle, so a newcomer may take its place.
        drop(busy);
        let _e = t.admit(key("10.0.0.4")).unwrap();
        assert!(a.0.evict.notified().now_or_never_ready());
        drop(a);
        assert_eq!(t.open(), 3);
        drop((b, d, busy_d));
        assert_eq!(t.open(), 1);
    }

    trait Ready {
        fn now_or_never_ready(self) -> bool;
    }

    impl<F: Future> Ready for F {
        fn now_or_never_ready(self) -> bool {
            let waker = std::task::Waker::noop();
            let mut cx = Context::from_waker(waker);
            let mut f = std::pin::pin!(self);
            f.as_mut().poll(&mut cx).is_ready()
        }
    }
}
