//! What the room view sends: a room's snapshot and deltas.

use schemas::{RoomMember, RoomMessage, Visibility};
use serde::Serialize;

/// A room as a whole.
#[derive(Debug, Serialize)]
#[serde(tag = "view", rename_all = "snake_case")]
pub enum RoomSnapshot<'a> {
    /// A room's members and its messages after the client's `since` (or the
    /// latest few).
    Room {
        /// Room id.
        id: &'a str,
        /// The room's latest message seq.
        seq: u64,
        /// Who may read and join.
        visibility: Visibility,
        /// Every member.
        members: Vec<&'a RoomMember>,
        /// Messages, in order.
        messages: Vec<&'a RoomMessage>,
    },
}

/// One change of a room.
#[derive(Debug, Serialize)]
#[serde(tag = "view", rename_all = "snake_case")]
pub enum RoomDelta<'a> {
    /// Members set and removed, messages added.
    Room {
        /// Room id.
        id: &'a str,
        /// The room's latest message seq after the change.
        seq: u64,
        /// Members that changed.
        members: &'a [RoomMember],
        /// Users no longer members.
        removes: &'a [String],
        /// New messages, in order.
        messages: &'a [RoomMessage],
    },
}
