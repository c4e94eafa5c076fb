//! The open connections: a place for each, at most a budget of them and a
//! share per client address, and which one to close when a newcomer needs
//! room (the one idle longest; never a WebSocket, never one with a request
//! in flight). `listener.rs` asks it at every accept.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

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
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Refusal::Full => "limit",
            Refusal::Address => "address",
        }
    }

    pub(crate) fn message(self) -> &'static str {
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
    /// connection if every place is taken. A `proxy` (trusted) is not
    /// capped per address.
    pub fn admit(self: &Arc<Self>, address: AddressKey, proxy: bool) -> Result<Ticket, Refusal> {
        let mut s = self.state.lock().expect("table lock");
        let from_here = s.per_address.get(&address).copied().unwrap_or(0);
        if self.per_address > 0 && !proxy && from_here >= self.per_address {
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
    /// `false` if the table has already told it to go (to make room): the
    /// upgrade must then be refused, or the table would hold one more than
    /// its budget for as long as the WebSocket lives.
    pub fn upgraded(&self) -> bool {
        let mut ok = false;
        self.0.table.with_entry(self.0.id, |s, id| {
            let e = s.conns.get_mut(&id).expect("checked");
            if e.evicted {
                return;
            }
            e.upgraded = true;
            ok = true;
            if let Some(k) = e.idle_key.take() {
                s.idle.remove(&k);
            }
        });
        ok
    }

    pub(crate) fn is_upgraded(&self) -> bool {
        let s = self.0.table.state.lock().expect("table lock");
        s.conns.get(&self.0.id).is_some_and(|e| e.upgraded)
    }

    /// Resolves when the table wants this connection gone.
    pub(crate) async fn evicted(&self) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::task::Context;

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
    fn a_trusted_proxy_is_not_capped_per_address() {
        let t = Table::new(10, 1);
        let _a = t.admit(key("10.0.0.1"), false).unwrap();
        assert_eq!(
            t.admit(key("10.0.0.1"), false).err(),
            Some(Refusal::Address)
        );
        let _b = t.admit(key("10.0.0.1"), true).unwrap();
        let _c = t.admit(key("10.0.0.1"), true).unwrap();
        assert_eq!(t.open(), 3);
    }

    #[test]
    fn a_full_table_closes_its_longest_idle_connection() {
        let t = Table::new(3, 2);
        let a = t.admit(key("10.0.0.1"), false).unwrap();
        let b = t.admit(key("10.0.0.1"), false).unwrap();
        assert_eq!(
            t.admit(key("10.0.0.1"), false).err(),
            Some(Refusal::Address)
        );
        let c = t.admit(key("10.0.0.2"), false).unwrap();
        // a is busy, b is a WebSocket: c is the only idle one, and goes.
        let busy = a.busy();
        assert!(b.upgraded());
        let d = t.admit(key("10.0.0.3"), false).unwrap();
        assert!(c.0.evict.notified().now_or_never_ready());
        assert!(!c.upgraded(), "told to go: it may not become a WebSocket");
        // Every place is busy now, or a WebSocket, or already told to go.
        let busy_d = d.busy();
        assert_eq!(t.admit(key("10.0.0.4"), false).err(), Some(Refusal::Full));
        drop(c);
        assert_eq!(t.open(), 3);
        // a's request ends: a is idle, so a newcomer may take its place.
        drop(busy);
        let _e = t.admit(key("10.0.0.4"), false).unwrap();
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
