//! The rooms job as the runtime runs it: chat events from `pace.chat` in,
//! one [`RoomChange`] per room and epoch out to `pace.rooms`.

use std::collections::BTreeMap;

use differential_dataflow::VecCollection;
use ingest::source::Envelope;
use schemas::{ChatEvent, Packed, RoomChange, Topics};

use super::{RoomRow, room_membership_durable};
use crate::job::Job;
use crate::runtime::{Dataflow, Inputs, Time};

/// Members, messages and creation of every room.
pub struct Rooms;

impl Job for Rooms {
    const NAME: &'static str = "rooms";
    type Row = RoomRow;
    type Change = RoomChange;
    type Encoder = ();

    fn changelog(topics: &Topics) -> &str {
        &topics.rooms
    }

    /// One change per room: members that joined or changed, members that
    /// left, the new messages in order, and how the room was created.
    fn encode(
        mut updates: Vec<((String, RoomRow), isize)>,
        _: &mut (),
    ) -> Vec<(String, RoomChange)> {
        // Insertions first: a retraction of a member also inserted is an update.
        updates.sort_by_key(|(_, diff)| std::cmp::Reverse(*diff > 0));
        let mut by_room: BTreeMap<String, RoomChange> = BTreeMap::new();
        for ((room, row), diff) in updates {
            let change = by_room.entry(room.clone()).or_insert_with(|| RoomChange {
                room,
                members: Vec::new(),
                removes: Vec::new(),
                messages: Vec::new(),
                visibility: None,
                created_by: None,
                create_id: None,
                invited: Vec::new(),
            });
            match row {
                RoomRow::Member(Packed(m)) if diff > 0 => change.members.push(m),
                RoomRow::Member(Packed(m)) => {
                    if !change.members.iter().any(|x| x.user == m.user) {
                        change.removes.push(m.user);
                    }
                }
                RoomRow::Message(Packed(m)) if diff > 0 => change.messages.push(m),
                RoomRow::Created(c) if diff > 0 => {
                    change.visibility = Some(c.visibility);
                    change.created_by = c.by;
                    change.create_id = c.create_id;
                }
                RoomRow::Invited(u) if diff > 0 => change.invited.push(u),
                // Messages, creation and invitations are never retracted.
                RoomRow::Message(_) | RoomRow::Created(_) | RoomRow::Invited(_) => {}
            }
        }
        by_room
            .into_iter()
            .map(|(room, mut c)| {
                c.messages.sort_by_key(|m| m.seq);
                (room, c)
            })
            .collect()
    }
}

impl Dataflow for Rooms {
    fn dataflow<'s>(inputs: &mut Inputs<'s>) -> VecCollection<'s, Time, (String, RoomRow)> {
        let topic = inputs.topics().chat.clone();
        let events = inputs.read(&topic, |e: Envelope<ChatEvent>| {
            (e.record.room.clone(), (e.offset, Packed(e.record)))
        });
        room_membership_durable(events, inputs.checkpoint("members"))
    }
}
