//! The edge's cache of the rooms: members, and the latest
//! [`MESSAGES_HELD`] messages of each room, rebuilt from `pace.rooms`.
//!
//! Frames (WebSocket, JSON; `seq` is the room's latest message seq):
//! - `{"type":"snapshot","view":"room","id":…,"seq":N,"members":[…],"messages":[…]}`:
//!   on subscribe, the members and the messages after the client's `since`
//!   (or the latest [`SNAPSHOT_MESSAGES`], if no `since` or the messages
//!   after it are no longer held: the client sees the gap in the seqs).
//! - `{"type":"delta","view":"room","id":…,"seq":N,"members":[…],"removes":[…],"messages":[…]}`:
//!   each change, encoded once for every subscriber.

pub mod frames;
pub mod history;
pub mod http;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, RwLock};

use schemas::{RoomChange, RoomMember, RoomMessage, Topics, Visibility};
use serde::Serialize;
use warp::Filter;

use self::frames::{RoomDelta, RoomSnapshot};
use crate::protocol::ViewKind;
use crate::protocol::{ErrorCode, Frame, Refused};
use crate::views::feed::Feed;
use crate::views::live::{
    Changelog, Context, First, Key, LiveView, Routes, Snapshot, Subscribed, ViewModule,
};

/// Messages held per room; older ones are in the archive and the changelog.
pub const MESSAGES_HELD: usize = 2000;
/// Messages in a snapshot for a client that gives no `since`.
pub const SNAPSHOT_MESSAGES: usize = 50;
/// Most messages one `GET …/messages` returns.
pub const MAX_PAGE: usize = 500;

/// What `GET /api/rooms` lists for a room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RoomSummary {
    /// Room id.
    pub id: String,
    /// Members.
    pub members: usize,
    /// Members online now.
    pub online: usize,
    /// The seq of the room's latest message (0: none yet).
    pub last_seq: u64,
    /// Who may read and join.
    pub visibility: Visibility,
}

/// A direct conversation, as `GET /api/conversations` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Conversation {
    /// Its room id ([`schemas::direct_room`] of the two).
    pub id: String,
    /// The other user.
    pub with: String,
    /// The seq of its latest message (0: none yet).
    pub last_seq: u64,
}

/// A room a user is a member of, as `GET /api/me/rooms` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MyRoom {
    /// Room id.
    pub id: String,
    /// Public, invite-only or a direct conversation.
    pub visibility: Visibility,
    /// The other user, for a direct conversation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub with: Option<String>,
    /// The seq of the room's latest message.
    pub last_seq: u64,
    /// The user's read marker.
    pub read_seq: u64,
    /// Messages after it.
    pub unread: u64,
}

/// Why messages cannot be served from what the edge holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gone {
    /// Messages up to and including this seq are beyond the changelog's
    /// retention (or older than anything this edge read of it).
    Before(u64),
    /// Not held, but in the changelog: read from this record on (see
    /// [`history`]).
    InChangelog {
        /// The room's partition of `pace.rooms`.
        partition: i32,
        /// A record at or before the first message wanted.
        offset: i64,
    },
}

/// How a room came to be, as its changelog says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Creation {
    /// Who may read and join.
    pub visibility: Visibility,
    /// Who created it (`None`: it was spoken in before any create).
    pub by: Option<String>,
    /// The winning create's `client_msg_id`.
    pub create_id: Option<String>,
}

struct RoomView {
    /// `None` until the room exists (created, or spoken in): a room with
    /// only joins so far is not shown to anyone.
    created: Option<Creation>,
    invited: std::collections::BTreeSet<String>,
    members: BTreeMap<String, RoomMember>,
    messages: VecDeque<RoomMessage>,
    last_seq: u64,
    /// Where the room's messages are in `pace.rooms`: the first seq of a
    /// record and its place, one entry every [`history::INDEX_EVERY`]
    /// messages or more.
    index: Vec<(u64, i32, i64)>,
    /// Version, seq (the latest message's) and subscribers.
    feed: Feed,
}

impl RoomView {
    fn new() -> Self {
        Self {
            created: None,
            invited: Default::default(),
            members: BTreeMap::new(),
            messages: VecDeque::new(),
            last_seq: 0,
            index: Vec::new(),
            feed: Feed::default(),
        }
    }

    /// The held messages after `since`, at most `limit`; or what is gone.
    fn after(&self, since: u64, limit: usize) -> Result<Vec<RoomMessage>, Gone> {
        let oldest = self.messages.front().map_or(self.last_seq + 1, |m| m.seq);
        if since + 1 < oldest {
            return Err(Gone::Before(oldest - 1));
        }
        Ok(self
            .messages
            .iter()
            .filter(|m| m.seq > since)
            .take(limit)
            .cloned()
            .collect())
    }

    fn visibility(&self) -> Visibility {
        self.created
            .as_ref()
            .map_or(Visibility::Public, |c| c.visibility)
    }

    /// Whether the room exists and `user` (or an anonymous reader) may see
    /// it: public, or a member or invitee of an invite-only one. To anyone
    /// else an invite-only room does not exist.
    fn visible_to(&self, user: Option<&str>) -> bool {
        self.created.is_some()
            && (self.visibility() == Visibility::Public
                || user.is_some_and(|u| self.members.contains_key(u) || self.invited.contains(u)))
    }

    /// The members and the messages after `since` (the latest
    /// [`SNAPSHOT_MESSAGES`] without one, or if those are gone).
    fn snapshot(&self, room: &str, since: Option<u64>) -> Frame {
        let oldest = self.messages.front().map_or(self.last_seq + 1, |m| m.seq);
        let skip = match since {
            // Everything after `since` is held.
            Some(s) if s + 1 >= oldest => self.messages.partition_point(|m| m.seq <= s),
            _ => self.messages.len().saturating_sub(SNAPSHOT_MESSAGES),
        };
        crate::protocol::snapshot(&RoomSnapshot::Room {
            id: room,
            seq: self.last_seq,
            visibility: self.visibility(),
            members: self.members.values().collect(),
            messages: self.messages.iter().skip(skip).collect(),
        })
    }
}

/// The rooms this edge serves.
#[derive(Default)]
pub struct Rooms {
    rooms: RwLock<BTreeMap<String, RoomView>>,
    /// Notified after every change.
    changed: std::sync::Arc<tokio::sync::Notify>,
}

impl Rooms {
    /// Applies a room change and broadcasts it. Messages already held (a
    /// changelog read twice) are not applied twice.
    pub fn apply(&self, change: RoomChange) {
        self.apply_from(change, None, None);
    }

    /// [`Rooms::apply`] of a change whose oldest input record was produced
    /// at `origin_ms`, read at `place` (partition, offset) of `pace.rooms`.
    pub fn apply_from(
        &self,
        mut change: RoomChange,
        origin_ms: Option<i64>,
        place: Option<(i32, i64)>,
    ) {
        let mut rooms = self.rooms.write().expect("rooms lock");
        let view = rooms
            .entry(change.room.clone())
            .or_insert_with(RoomView::new);
        if let Some(visibility) = change.visibility {
            view.created = Some(Creation {
                visibility,
                by: change.created_by.clone(),
                create_id: change.create_id.clone(),
            });
        }
        view.invited.extend(change.invited.iter().cloned());
        for user in &change.removes {
            view.members.remove(user);
        }
        for m in &change.members {
            view.members.insert(m.user.clone(), m.clone());
        }
        change.messages.retain(|m| m.seq > view.last_seq);
        if let (Some(first), Some((partition, offset))) = (change.messages.first(), place) {
            let due =
                (view.index.last()).is_none_or(|(s, ..)| first.seq >= s + history::INDEX_EVERY);
            if due {
                view.index.push((first.seq, partition, offset));
            }
        }
        for m in &change.messages {
            if m.seq != view.last_seq + 1 {
                tracing::warn!(room = %change.room, held = view.last_seq, got = m.seq, "room log jumped");
            }
            view.last_seq = m.seq;
            view.messages.push_back(m.clone());
            if view.messages.len() > MESSAGES_HELD {
                view.messages.pop_front();
            }
        }
        view.feed.advance(view.last_seq);
        if view.feed.heard() {
            let frame = crate::protocol::delta(&RoomDelta::Room {
                id: &change.room,
                seq: view.last_seq,
                members: &change.members,
                removes: &change.removes,
                messages: &change.messages,
            });
            view.feed.send(frame, true, origin_ms);
        }
        drop(rooms);
        self.changed.notify_waiters();
    }

    /// How `room` came to be, once it exists; waits up to `within` for it.
    pub async fn creation(&self, room: &str, within: std::time::Duration) -> Option<Creation> {
        crate::input::decision::wait(within, || self.created(room)).await
    }

    /// How `room` came to be, or what announces that it came to be.
    pub fn created(&self, room: &str) -> Result<Creation, std::sync::Arc<tokio::sync::Notify>> {
        let rooms = self.rooms.read().expect("rooms lock");
        rooms
            .get(room)
            .and_then(|v| v.created.clone())
            .ok_or_else(|| self.changed.clone())
    }

    /// The rooms `user` (`None`: anonymous) may see.
    pub fn list(&self, user: Option<&str>) -> Vec<RoomSummary> {
        let rooms = self.rooms.read().expect("rooms lock");
        rooms
            .iter()
            .filter(|(_, v)| v.visible_to(user))
            .map(|(id, v)| summary(id, v))
            .collect()
    }

    /// One room, if `user` may see it.
    pub fn summary(&self, room: &str, user: Option<&str>) -> Option<RoomSummary> {
        let rooms = self.rooms.read().expect("rooms lock");
        let v = rooms.get(room).filter(|v| v.visible_to(user))?;
        Some(summary(room, v))
    }

    /// Whether `room` exists and `user` (`None`: anonymous) may see it.
    pub fn visible(&self, room: &str, user: Option<&str>) -> bool {
        let rooms = self.rooms.read().expect("rooms lock");
        rooms.get(room).is_some_and(|v| v.visible_to(user))
    }

    /// The rooms with anyone online (whose leases every edge renews).
    pub fn online_rooms(&self) -> Vec<String> {
        let rooms = self.rooms.read().expect("rooms lock");
        (rooms.iter())
            .filter(|(_, v)| v.members.values().any(|m| m.online))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Whether `user` may join `room`: it exists, and is public, or they
    /// are invited or a member already.
    pub fn may_join(&self, room: &str, user: &str) -> bool {
        self.visible(room, Some(user))
    }

    /// Whether `user` is a member of `room`.
    pub fn is_member(&self, room: &str, user: &str) -> bool {
        let rooms = self.rooms.read().expect("rooms lock");
        rooms
            .get(room)
            .is_some_and(|v| v.members.contains_key(user))
    }

    /// The direct conversations `user` is in: each with the other user.
    pub fn conversations(&self, user: &str) -> Vec<Conversation> {
        let rooms = self.rooms.read().expect("rooms lock");
        (rooms.iter())
            .filter(|(_, v)| v.visibility() == Visibility::Direct && v.invited.contains(user))
            .filter_map(|(id, v)| {
                Some(Conversation {
                    id: id.clone(),
                    with: v.invited.iter().find(|u| *u != user)?.clone(),
                    last_seq: v.last_seq,
                })
            })
            .collect()
    }

    /// The rooms `user` is a member of, with what they have not read.
    pub fn mine(&self, user: &str) -> Vec<MyRoom> {
        let rooms = self.rooms.read().expect("rooms lock");
        (rooms.iter())
            .filter(|(_, v)| v.created.is_some())
            .filter_map(|(id, v)| {
                let m = v.members.get(user)?;
                let direct = v.visibility() == Visibility::Direct;
                Some(MyRoom {
                    id: id.clone(),
                    visibility: v.visibility(),
                    with: direct
                        .then(|| v.invited.iter().find(|u| *u != user).cloned())
                        .flatten(),
                    last_seq: v.last_seq,
                    read_seq: m.read_seq,
                    unread: v.last_seq.saturating_sub(m.read_seq),
                })
            })
            .collect()
    }

    /// Whether `room` is a direct conversation.
    pub fn is_direct(&self, room: &str) -> bool {
        let rooms = self.rooms.read().expect("rooms lock");
        rooms
            .get(room)
            .is_some_and(|v| v.visibility() == Visibility::Direct)
    }

    /// Whether `room` exists here (created, or spoken in), whoever may see it.
    pub fn exists(&self, room: &str) -> bool {
        let rooms = self.rooms.read().expect("rooms lock");
        rooms.get(room).is_some_and(|v| v.created.is_some())
    }

    /// A room's members, by user id, if `user` may see it.
    pub fn members(&self, room: &str, user: Option<&str>) -> Option<Vec<RoomMember>> {
        let rooms = self.rooms.read().expect("rooms lock");
        let v = rooms.get(room).filter(|v| v.visible_to(user))?;
        Some(v.members.values().cloned().collect())
    }

    /// A room's messages after `since`, at most `limit` (capped at
    /// [`MAX_PAGE`]), if `user` may see it.
    pub fn messages(
        &self,
        room: &str,
        user: Option<&str>,
        since: u64,
        limit: usize,
    ) -> Option<Result<Vec<RoomMessage>, Gone>> {
        let rooms = self.rooms.read().expect("rooms lock");
        let v = rooms.get(room).filter(|v| v.visible_to(user))?;
        Some(v.after(since, limit.min(MAX_PAGE)).map_err(|gone| {
            // The latest indexed record at or before the first one wanted.
            let at = v.index.partition_point(|(s, ..)| *s <= since + 1);
            match (gone, at.checked_sub(1).map(|i| v.index[i])) {
                (Gone::Before(_), Some((_, partition, offset))) => {
                    Gone::InChangelog { partition, offset }
                }
                (gone, _) => gone,
            }
        }))
    }

    /// A snapshot (the messages after `since`, if given and still held) and
    /// the changes after it, taken together so nothing falls between; if
    /// `user` may see the room.
    pub fn subscribe(
        &self,
        room: &str,
        user: Option<&str>,
        since: Option<u64>,
    ) -> Option<Subscribed> {
        let rooms = self.rooms.read().expect("rooms lock");
        let v = rooms.get(room).filter(|v| v.visible_to(user))?;
        Some(v.feed.subscribe(First::Snapshot(v.snapshot(room, since))))
    }

    /// A fresh snapshot with the messages after `since` (for a subscriber
    /// that fell behind: exactly what it missed, if still held).
    pub fn snapshot(&self, room: &str, since: u64) -> Option<Snapshot> {
        let rooms = self.rooms.read().expect("rooms lock");
        let v = rooms.get(room)?;
        Some(v.feed.fresh(v.snapshot(room, Some(since))))
    }
}

impl LiveView for Rooms {
    /// To anyone who may not see it, an invite-only room does not exist.
    fn subscribe(
        &self,
        key: &Key,
        user: Option<&str>,
        since: Option<u64>,
    ) -> Result<Subscribed, Refused> {
        Rooms::subscribe(self, &key.id, user, since).ok_or_else(|| unseen(&key.id))
    }

    fn resnapshot(&self, key: &Key, seq: u64) -> Option<Snapshot> {
        self.snapshot(&key.id, seq)
    }

    /// A subscription ends once the room is no longer the user's to see
    /// (they left an invite-only room).
    fn check(&self, key: &Key, user: Option<&str>) -> Result<(), Refused> {
        if self.visible(&key.id, user) {
            Ok(())
        } else {
            Err(match unseen(&key.id) {
                Refused(ErrorCode::UnknownRoom, _) => Refused(
                    ErrorCode::UnknownRoom,
                    "no longer visible to you".to_owned(),
                ),
                forbidden => forbidden,
            })
        }
    }
}

/// The refusal for a room that does not exist (or is not the user's to see).
fn unknown(room: &str) -> Refused {
    Refused(ErrorCode::UnknownRoom, format!("no room {room:?}"))
}

/// The refusal for a room the user may not see. A direct conversation
/// that is not theirs is forbidden whether it exists or not: its id is a
/// hash of its two users' names ([`schemas::direct_room`]), so anyone can
/// compute it, and an answer that told the two cases apart would tell a
/// third user who talks to whom. Any other room they may not see does not
/// exist for them.
pub(crate) fn unseen(room: &str) -> Refused {
    if room.starts_with(schemas::records::DIRECT_PREFIX) {
        Refused(
            ErrorCode::Forbidden,
            format!("{room:?} is a direct conversation, and not yours"),
        )
    } else {
        unknown(room)
    }
}

fn summary(id: &str, v: &RoomView) -> RoomSummary {
    RoomSummary {
        id: id.to_owned(),
        members: v.members.len(),
        online: v.members.values().filter(|m| m.online).count(),
        last_seq: v.last_seq,
        visibility: v.visibility(),
    }
}

impl ViewModule for Rooms {
    fn kinds(&self) -> &'static [ViewKind] {
        &[ViewKind::Room]
    }

    fn changelogs(self: Arc<Self>, topics: &Topics) -> Vec<Changelog> {
        vec![Changelog::json_at(
            &topics.rooms,
            "room change",
            move |c, o, place| {
                self.apply_from(c, o, Some(place));
            },
        )]
    }

    fn routes(self: Arc<Self>, context: &Context) -> Routes {
        http::routes(self, context.callers.clone()).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::Timestamp;

    fn message(seq: u64) -> RoomMessage {
        RoomMessage {
            room: "r".into(),
            seq,
            user: "ann".into(),
            text: format!("m{seq}"),
            client_msg_id: None,
            time: Timestamp(1_780_000_000_000),
        }
    }

    fn change(seqs: std::ops::RangeInclusive<u64>) -> RoomChange {
        RoomChange {
            room: "r".into(),
            members: vec![],
            removes: vec![],
            messages: seqs.map(message).collect(),
            visibility: Some(Visibility::Public),
            created_by: None,
            create_id: None,
            invited: vec![],
        }
    }

    #[test]
    fn holds_a_bounded_log_and_says_what_is_gone() {
        let rooms = Rooms::default();
        rooms.apply(change(1..=2200));
        rooms.apply(change(2190..=2201)); // read twice: not applied twice
        let seqs = |r: Result<Vec<RoomMessage>, Gone>| -> Vec<u64> {
            r.unwrap().iter().map(|m| m.seq).collect()
        };
        assert_eq!(
            seqs(rooms.messages("r", None, 2198, 10).unwrap()),
            [2199, 2200, 2201]
        );
        assert_eq!(
            rooms.messages("r", None, 201, 2).unwrap(),
            Ok(vec![message(202), message(203)])
        );
        assert_eq!(
            rooms.messages("r", None, 200, 2).unwrap(),
            Err(Gone::Before(201))
        );
        assert!(rooms.messages("nope", None, 0, 1).is_none());
        assert_eq!(rooms.list(None)[0].last_seq, 2201);
    }

    #[test]
    fn an_invite_only_room_exists_only_for_its_members_and_invitees() {
        let rooms = Rooms::default();
        let member = |user: &str| RoomMember {
            room: "s".into(),
            user: user.into(),
            online: false,
            joined_at: Timestamp(1_780_000_000_000),
            read_seq: 0,
        };
        // Joins alone do not make a room.
        rooms.apply(RoomChange {
            room: "s".into(),
            members: vec![member("eve")],
            removes: vec![],
            messages: vec![],
            visibility: None,
            created_by: None,
            create_id: None,
            invited: vec![],
        });
        assert!(!rooms.exists("s") && rooms.list(Some("eve")).is_empty());
        assert!(!rooms.may_join("s", "eve"));
        rooms.apply(RoomChange {
            room: "s".into(),
            members: vec![member("ann")],
            removes: vec!["eve".into()],
            messages: vec![],
            visibility: Some(Visibility::InviteOnly),
            created_by: Some("ann".into()),
            create_id: Some("c1".into()),
            invited: vec!["bob".into()],
        });
        assert!(rooms.exists("s"));
        for who in [None, Some("eve")] {
            assert!(rooms.list(who).is_empty(), "{who:?}");
            assert!(rooms.summary("s", who).is_none());
            assert!(rooms.members("s", who).is_none());
            assert!(rooms.messages("s", who, 0, 10).is_none());
            assert!(rooms.subscribe("s", who, None).is_none());
        }
        assert!(!rooms.may_join("s", "eve"));
        for who in ["ann", "bob"] {
            assert_eq!(rooms.list(Some(who)).len(), 1, "{who}");
            assert!(rooms.members("s", Some(who)).is_some());
            assert!(rooms.may_join("s", who));
        }
    }
}
