//! `room_membership`: who is in each room, who is online, and each room's
//! message log with gapless per-room sequence numbers.
//!
//! A room's events are keyed by room, so they sit in one Kafka partition and
//! their offsets order them. The job folds each room's events in that order:
//! the first create of a room with no messages yet wins and sets it public
//! or invite-only, with its creator as a member (an invite-only room drops
//! whoever joined before it existed: they were not invited); a later create
//! changes nothing, and neither does a join before the create. A room that
//! gets a message before any create (an IRC log replayed) is public from
//! that message on, created by nobody, so a create after it loses. The
//! winner is a row of the view (who, and the create's `client_msg_id`), so
//! an edge tells the creator 201 and everyone else 409.
//! A direct conversation (`Visibility::Direct`) is made by its create
//! alone, under the id [`schemas::direct_room`] of its two users (a create
//! under any other id does not validate): both are its members, each may
//! leave and come back, nobody is invited, and a message before the create
//! makes nothing of it.
//! A member's read marker (`read`, with the seq they have read up to)
//! only moves on, never past the room's last message, and is a field of
//! their member row: what is unread is the room's last seq minus it.
//! A member's invite lets the invitee join an invite-only room
//! (where only members speak); a join makes a member (joining twice is one membership), a leave ends it,
//! a message makes its author a member if they were not (an IRC user who
//! speaks without a join line is present from then on) and takes the room's
//! next sequence number (a retry, with the same user and client message id
//! as one of the room's last 4,096, is not a new message); connect and disconnect count a member's open
//! connections, per edge, online while one is open.
//!
//! Presence survives an edge's death: every edge renews a lease on each
//! room with anyone online every [`schemas::records::LEASE_EVERY_MS`],
//! naming who is connected through it (`present`, as of the lease's
//! time). A lease sets the edge's counts to what it names, but for a
//! user whose connect or disconnect through it is later than the lease
//! (so a lease and a connect crossing in flight agree). Any event of the
//! room, at time `t`, first closes the connections of every edge last
//! heard of in the room before `t - LEASE_MS`: a SIGKILLed edge renews
//! nothing, the others' leases keep the room's time going, and its users
//! go offline. Decided from the events' own times, in the room's order, so
//! a replay decides the same. Batches are applied only when the
//! frontier has passed their time, in order, so the output depends only on
//! the events and their order: the same after a replay, for any worker count.
//!
//! The job holds per room its members and a counter, not the message log:
//! messages flow out once, to the changelog. That state is what a snapshot
//! keeps, so sequence numbers continue after a restore.

use std::collections::BTreeMap;

use differential_dataflow::VecCollection;
use differential_dataflow::lattice::Lattice;
use timely::order::TotalOrder;
use timely::progress::Timestamp;

use schemas::records::LEASE_MS;
use schemas::{ChatEvent, ChatKind, Packed, RoomMember, RoomMessage, Visibility};

use super::fold::{changed_rows, fold_in_order, in_order_by_key};

mod job;
use crate::snapshot::Checkpoint;
pub use job::Rooms;

/// A chat event in the dataflow: room, and (order, event). The order is the
/// event's Kafka offset (one partition holds a room).
pub type RoomEvent = (String, (i64, Packed<ChatEvent>));

/// A row of a room's view.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum RoomRow {
    /// A member, online or not.
    Member(Packed<RoomMember>),
    /// A message of the log.
    Message(Packed<RoomMessage>),
    /// How the room came to be: rooms that were created, or spoken in.
    Created(Created),
    /// A user invited to the room.
    Invited(String),
}

/// How a room came to be.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Created {
    /// Who may read and join.
    pub visibility: Visibility,
    /// Who created it (`None`: nobody; it was spoken in first).
    pub by: Option<String>,
    /// The winning create's `client_msg_id`.
    pub create_id: Option<String>,
}

/// Client message ids remembered per room, to recognise a retried post.
pub const RECENT_CLIENT_IDS: usize = 4096;

/// A room's state: members (user → joined at), open connections, last seq,
/// and the latest client message ids.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Room {
    created: Option<Created>,
    invited: std::collections::BTreeSet<String>,
    members: BTreeMap<String, schemas::Timestamp>,
    /// user → edge → (open connections, time of the last connect or
    /// disconnect through it). Events without an edge count under "".
    connections: BTreeMap<String, BTreeMap<String, (u32, i64)>>,
    /// edge → when it was last heard of in the room (edges with
    /// connections here only).
    leases: BTreeMap<String, i64>,
    seq: u64,
    /// Each user's read marker: the seq they have read up to.
    reads: BTreeMap<String, u64>,
    recent: std::collections::VecDeque<(String, String)>,
    recent_set: std::collections::HashSet<(String, String)>,
}

impl Room {
    fn visibility(&self) -> Option<Visibility> {
        self.created.as_ref().map(|c| c.visibility)
    }

    /// Closes the connections of every edge last heard of in the room
    /// more than [`LEASE_MS`] before `now`.
    fn expire(&mut self, now: i64) {
        let dead: Vec<String> = (self.leases.iter())
            .filter(|(edge, last)| !edge.is_empty() && now > **last + LEASE_MS)
            .map(|(edge, _)| edge.clone())
            .collect();
        for edge in dead {
            self.leases.remove(&edge);
            self.connections.retain(|_, by| {
                by.remove(&edge);
                !by.is_empty()
            });
        }
    }

    /// Notes that `edge` was heard of at `t`, if it has connections here.
    fn heard(&mut self, edge: &str, t: i64) {
        let has = self.connections.values().any(|by| by.contains_key(edge));
        if has {
            let last = self.leases.entry(edge.to_owned()).or_insert(t);
            *last = (*last).max(t);
        } else {
            self.leases.remove(edge);
        }
    }

    /// A connect (`+1`) or disconnect (`-1`) of `user` through `edge` at `t`.
    fn connection(&mut self, user: &str, edge: &str, delta: i32, t: i64) {
        let by = self.connections.entry(user.to_owned()).or_default();
        let (n, at) = by.entry(edge.to_owned()).or_insert((0, t));
        *n = n.saturating_add_signed(delta);
        *at = (*at).max(t);
        if *n == 0 {
            by.remove(edge);
        }
        if by.is_empty() {
            self.connections.remove(user);
        }
        self.heard(edge, t);
    }

    /// `edge`'s lease at `t`: its counts become `present`'s, but for users
    /// whose connect or disconnect through it came later than `t`.
    fn lease(&mut self, edge: &str, present: &BTreeMap<String, u32>, t: i64) {
        for (user, by) in self.connections.iter_mut() {
            if by.get(edge).is_some_and(|(_, at)| *at <= t) && !present.contains_key(user) {
                by.remove(edge);
            }
        }
        for (user, n) in present {
            let by = self.connections.entry(user.clone()).or_default();
            match by.get_mut(edge) {
                Some((_, at)) if *at > t => {}
                Some(slot) => *slot = (*n, t),
                None => {
                    by.insert(edge.to_owned(), (*n, t));
                }
            }
        }
        self.connections.retain(|_, by| !by.is_empty());
        self.heard(edge, t);
    }

    /// Applies the room's next event; the message it adds to the log, if any.
    pub fn apply(&mut self, room: &str, e: &ChatEvent) -> Option<RoomMessage> {
        self.expire(e.time.0);
        // Invite-only rooms and direct conversations: members only.
        let closed = matches!(
            self.visibility(),
            Some(Visibility::InviteOnly | Visibility::Direct)
        );
        let open = !closed || self.invited.contains(&e.user) || self.members.contains_key(&e.user);
        match e.kind {
            ChatKind::Create => {
                // The first create of a room nobody has spoken in wins;
                // later ones change nothing.
                if let (None, 0, Some(visibility)) = (&self.created, self.seq, e.visibility) {
                    self.created = Some(Created {
                        visibility,
                        by: Some(e.user.clone()),
                        create_id: e.client_msg_id.clone(),
                    });
                    match (visibility, &e.invitee) {
                        (Visibility::InviteOnly, _) => {
                            // Joined before it existed: not invited.
                            let invited = &self.invited;
                            self.members.retain(|u, _| invited.contains(u));
                        }
                        (Visibility::Direct, Some(other)) => {
                            // The two (the id says which two: see
                            // `schemas::direct_room`), and nobody else.
                            self.members.clear();
                            self.invited = [e.user.clone(), other.clone()].into();
                            self.members.insert(other.clone(), e.time);
                        }
                        _ => {}
                    }
                    self.members.insert(e.user.clone(), e.time);
                }
                None
            }
            ChatKind::Invite if self.visibility() == Some(Visibility::Direct) => None,
            ChatKind::Invite => {
                if let (true, Some(who)) = (self.members.contains_key(&e.user), &e.invitee) {
                    self.invited.insert(who.clone());
                }
                None
            }
            ChatKind::Join => {
                if open {
                    self.members.entry(e.user.clone()).or_insert(e.time);
                }
                None
            }
            ChatKind::Leave => {
                self.members.remove(&e.user);
                None
            }
            ChatKind::Read => {
                // A member's marker only moves on, and never past the log.
                if let (true, Some(seq)) = (self.members.contains_key(&e.user), e.seq) {
                    let read = self.reads.entry(e.user.clone()).or_default();
                    *read = (*read).max(seq.min(self.seq));
                }
                None
            }
            ChatKind::Connect => {
                let edge = e.edge.as_deref().unwrap_or_default();
                self.connection(&e.user, edge, 1, e.time.0);
                None
            }
            ChatKind::Disconnect => {
                let edge = e.edge.as_deref().unwrap_or_default();
                self.connection(&e.user, edge, -1, e.time.0);
                None
            }
            ChatKind::Lease => {
                if let (Some(edge), Some(present)) = (&e.edge, &e.present) {
                    self.lease(edge, present, e.time.0);
                }
                None
            }
            ChatKind::Message => {
                // In an invite-only room only members speak; elsewhere
                // speaking makes a member, as on IRC.
                let member = self.members.contains_key(&e.user);
                if closed && !member {
                    return None;
                }
                if self.created.is_none() && room.starts_with(schemas::records::DIRECT_PREFIX) {
                    // A direct conversation comes to be only by its create.
                    return None;
                }
                if self.created.is_none() {
                    // Spoken in before anyone created it: public, nobody's.
                    self.created = Some(Created {
                        visibility: Visibility::Public,
                        by: None,
                        create_id: None,
                    });
                }
                self.members.entry(e.user.clone()).or_insert(e.time);
                if let Some(id) = &e.client_msg_id {
                    // A retried post (the same user and client id) is one message.
                    let key = (e.user.clone(), id.clone());
                    if !self.recent_set.insert(key.clone()) {
                        return None;
                    }
                    self.recent.push_back(key);
                    if self.recent.len() > RECENT_CLIENT_IDS {
                        let old = self.recent.pop_front().expect("non-empty");
                        self.recent_set.remove(&old);
                    }
                }
                self.seq += 1;
                Some(RoomMessage {
                    room: room.to_owned(),
                    seq: self.seq,
                    user: e.user.clone(),
                    text: e.text.clone().unwrap_or_default(),
                    client_msg_id: e.client_msg_id.clone(),
                    time: e.time,
                })
            }
        }
    }

    /// The room's rows other than messages: members (with whether each is
    /// online), how it was created and invitations.
    pub fn rows(&self, room: &str) -> Vec<RoomRow> {
        let members = self.members.iter().map(|(user, joined_at)| {
            RoomRow::Member(Packed(RoomMember {
                room: room.to_owned(),
                user: user.clone(),
                online: self.connections.contains_key(user),
                joined_at: *joined_at,
                read_seq: self.reads.get(user).copied().unwrap_or(0),
            }))
        });
        members
            .chain(self.created.clone().map(RoomRow::Created))
            .chain(self.invited.iter().cloned().map(RoomRow::Invited))
            .collect()
    }
}

/// Members and messages of every room, as `(room, row)`.
pub fn room_membership<'s, T>(
    events: VecCollection<'s, T, RoomEvent>,
) -> VecCollection<'s, T, (String, RoomRow)>
where
    T: Timestamp + Lattice + TotalOrder + Ord + Into<u64>,
{
    room_membership_durable(events, Checkpoint::none())
}

/// The rooms' state on one worker, as a snapshot holds it: each room's
/// state and the order (Kafka offset) of its last event.
pub type RoomsState = BTreeMap<String, (Room, i64)>;

/// [`room_membership`] that writes its state at snapshot points through
/// `checkpoint` and starts from what it restored (see [`crate::snapshot`]). A restored room emits nothing
/// until its next event: its rows are already in the changelog.
pub fn room_membership_durable<'s, T>(
    events: VecCollection<'s, T, RoomEvent>,
    checkpoint: Checkpoint<RoomsState>,
) -> VecCollection<'s, T, (String, RoomRow)>
where
    T: Timestamp + Lattice + TotalOrder + Ord + Into<u64>,
{
    let out_of_order = observability::metrics()
        .rooms_events
        .with_label_values(&["out_of_order"]);
    fold_in_order(
        events,
        "RoomMembership",
        checkpoint,
        move |rooms: &mut RoomsState, batch, out| {
            let mut touched: BTreeMap<String, Vec<RoomRow>> = BTreeMap::new();
            for (room, (order, event)) in batch {
                let (state, last) = rooms.entry(room.clone()).or_default();
                if order < *last {
                    out_of_order.inc();
                }
                *last = order;
                touched
                    .entry(room.clone())
                    .or_insert_with(|| state.rows(&room));
                if let Some(m) = state.apply(&room, &event) {
                    out.push(((room, RoomRow::Message(Packed(m))), 1));
                }
            }
            for (room, before) in touched {
                changed_rows(&room, &before, &rooms[&room].0.rows(&room), out);
            }
        },
    )
}

/// The views, the plain way: each room's events sorted by order and applied
/// one by one.
pub fn reference(events: &[RoomEvent]) -> BTreeMap<String, Vec<RoomRow>> {
    in_order_by_key(events)
        .into_iter()
        .map(|(room, list)| {
            let mut state = Room::default();
            let mut rows: Vec<RoomRow> = list
                .into_iter()
                .filter_map(|(_, e)| state.apply(room, e))
                .map(|m| RoomRow::Message(Packed(m)))
                .collect();
            rows.extend(state.rows(room));
            rows.sort();
            (room.to_owned(), rows)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(user: &str, kind: ChatKind, edge: &str, t: i64) -> ChatEvent {
        ChatEvent {
            edge: Some(edge.into()),
            time: schemas::Timestamp(t),
            ..ws_edge::input::EdgeInput::event("r", user, kind)
        }
    }

    fn lease(edge: &str, present: &[(&str, u32)], t: i64) -> ChatEvent {
        ChatEvent {
            present: Some(present.iter().map(|(u, n)| (u.to_string(), *n)).collect()),
            ..event(edge, ChatKind::Lease, edge, t)
        }
    }

    fn online(room: &Room) -> Vec<String> {
        room.connections.keys().cloned().collect()
    }

    #[test]
    fn a_silent_edges_users_go_offline_and_a_lease_is_what_its_edge_has() {
        let mut r = Room::default();
        r.apply("r", &event("ann", ChatKind::Connect, "e1", 0));
        r.apply("r", &event("bob", ChatKind::Connect, "e2", 1));
        r.apply("r", &lease("e1", &[("ann", 1)], 10_000));
        assert_eq!(online(&r), ["ann", "bob"]);
        // e2 is not heard of for longer than a lease: at the next event
        // of the room, its users are offline; e1's are not.
        r.apply("r", &lease("e1", &[("ann", 1)], LEASE_MS + 2));
        assert_eq!(online(&r), ["ann"]);
        // A connect and a lease that crossed in flight: the lease (taken
        // before the connect) does not undo it.
        r.apply("r", &event("cy", ChatKind::Connect, "e1", 30_001));
        r.apply("r", &lease("e1", &[("ann", 1)], 30_000));
        assert_eq!(online(&r), ["ann", "cy"]);
        // A later lease is what the edge has: nobody.
        r.apply("r", &lease("e1", &[], 40_000));
        assert!(online(&r).is_empty());
        // And a lease names who the edge has, even if their connect was
        // lost: two connections, one disconnect, still online.
        r.apply("r", &lease("e2", &[("dee", 2)], 41_000));
        r.apply("r", &event("dee", ChatKind::Disconnect, "e2", 41_001));
        assert_eq!(online(&r), ["dee"]);
        let rows = r.rows("r");
        assert!(rows.is_empty(), "nobody is a member: {rows:?}");
    }
}
