//! Who is connected to which room through this edge, and the leases that
//! keep them online: the edge's side of presence (the rooms job's side is
//! in `pipeline/src/jobs/rooms`).
//!
//! Every connect and disconnect through this edge names it (a random id
//! per start, [`Presence::edge`]), and every [`LEASE_EVERY_MS`] the edge
//! renews a lease on each room where it has connections, and on each room
//! the rooms view shows anyone online in (so that a room whose only edge
//! died still hears events, and its users go offline). A lease names who
//! is connected through this edge, with how many connections, as of its
//! time; times are stamped under one lock and never repeat, so the rooms
//! job can tell a lease from a connect that crossed it in flight.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use schemas::records::{LEASE_EVERY_MS, MAX_PRESENT};
use schemas::{ChatEvent, ChatKind, Timestamp};

/// This edge's connections per room, and its id.
#[derive(Debug)]
pub struct Presence {
    edge: String,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// room → user → open connections.
    rooms: HashMap<String, BTreeMap<String, u32>>,
    /// The last time stamped, ms.
    last: i64,
}

impl Inner {
    /// Now, or just after the last time stamped.
    fn stamp(&mut self) -> Timestamp {
        self.last = Timestamp::now().0.max(self.last + 1);
        Timestamp(self.last)
    }
}

impl Default for Presence {
    fn default() -> Self {
        Self::new()
    }
}

impl Presence {
    /// A new edge's presence, under a fresh id.
    pub fn new() -> Self {
        Self {
            edge: format!("edge-{:016x}", rand::random::<u64>()),
            inner: Mutex::default(),
        }
    }

    /// This edge's id.
    pub fn edge(&self) -> &str {
        &self.edge
    }

    fn event(&self, room: &str, user: &str, kind: ChatKind, time: Timestamp) -> ChatEvent {
        ChatEvent {
            edge: Some(self.edge.clone()),
            time,
            ..super::EdgeInput::event(room, user, kind)
        }
    }

    /// A connection of `user` to `room` opens: the event to send.
    pub fn connect(&self, room: &str, user: &str) -> ChatEvent {
        let mut inner = self.inner.lock().expect("presence lock");
        *(inner.rooms.entry(room.to_owned()).or_default())
            .entry(user.to_owned())
            .or_default() += 1;
        let time = inner.stamp();
        self.event(room, user, ChatKind::Connect, time)
    }

    /// A connection of `user` to `room` closes: the event to send.
    pub fn disconnect(&self, room: &str, user: &str) -> ChatEvent {
        let mut inner = self.inner.lock().expect("presence lock");
        if let Some(users) = inner.rooms.get_mut(room) {
            if let Some(n) = users.get_mut(user) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    users.remove(user);
                }
            }
            if users.is_empty() {
                inner.rooms.remove(room);
            }
        }
        let time = inner.stamp();
        self.event(room, user, ChatKind::Disconnect, time)
    }

    /// The leases to send now: one for each room with connections here,
    /// and one for each of `others` (rooms with anyone online), each
    /// naming who is connected through this edge (at most
    /// [`MAX_PRESENT`] users: the rest keep their connects).
    pub fn leases(&self, others: impl IntoIterator<Item = String>) -> Vec<ChatEvent> {
        let mut inner = self.inner.lock().expect("presence lock");
        let time = inner.stamp();
        let mut rooms: BTreeMap<String, BTreeMap<String, u32>> = (inner.rooms.iter())
            .map(|(room, users)| {
                let present = users.iter().take(MAX_PRESENT);
                (
                    room.clone(),
                    present.map(|(u, n)| (u.clone(), *n)).collect(),
                )
            })
            .collect();
        for room in others {
            rooms.entry(room).or_default();
        }
        drop(inner);
        rooms
            .into_iter()
            .map(|(room, present)| ChatEvent {
                present: Some(present),
                ..self.event(&room, &self.edge, ChatKind::Lease, time)
            })
            .collect()
    }
}

/// How often leases are renewed.
pub const RENEW_EVERY: std::time::Duration =
    std::time::Duration::from_millis(LEASE_EVERY_MS as u64);

#[cfg(test)]
mod tests {
    use schemas::Validate;

    use super::*;

    #[test]
    fn leases_name_who_is_here_and_times_never_repeat() {
        let p = Presence::new();
        let a = p.connect("r1", "ann");
        let b = p.connect("r1", "ann");
        let c = p.connect("r2", "bob");
        assert!(a.time < b.time && b.time < c.time);
        assert_eq!(a.edge.as_deref(), Some(p.edge()));
        let leases = p.leases(["r3".to_owned(), "r1".to_owned()]);
        let rooms: Vec<&str> = leases.iter().map(|l| l.room.as_str()).collect();
        assert_eq!(rooms, ["r1", "r2", "r3"]);
        assert_eq!(
            leases[0].present,
            Some(BTreeMap::from([("ann".to_owned(), 2)]))
        );
        assert_eq!(leases[2].present, Some(BTreeMap::new()));
        for e in leases.iter().chain([&a, &b, &c]) {
            e.validate().unwrap();
        }
        p.disconnect("r1", "ann");
        let d = p.disconnect("r1", "ann");
        assert!(d.time > leases[0].time);
        let rooms: Vec<String> = p.leases([]).into_iter().map(|l| l.room).collect();
        assert_eq!(rooms, ["r2"]);
    }
}
