//! The spectator protocol's envelope, typed: every frame a client may send
//! ([`ClientFrame`]), the frames the edge sends about subscriptions and
//! actions ([`ServerFrame`]), and the envelope of a view's snapshots and
//! deltas ([`snapshot`], [`delta`]), whose bodies each view module owns
//! (`views/*/frames.rs`). A frame is decoded once by serde into a
//! [`ClientFrame`] and encoded once; nothing looks at a frame's text after
//! that. `PROTOCOL.md` and `protocol.schema.json` describe the same frames.

pub(crate) mod body;
pub mod refusal;
pub mod viewport;

use serde::{Deserialize, Serialize};

pub use crate::protocol::refusal::{ErrorCode, Refused};
use crate::protocol::viewport::WindowSpec;

/// An encoded frame, shared by all subscribers: reference-counted bytes,
/// cloned for each subscriber, never copied.
pub type Frame = tokio_tungstenite::tungstenite::Utf8Bytes;

/// A live view a client subscribes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViewKind {
    /// A race's standings and splits.
    Race,
    /// One participant of a race.
    Participant,
    /// A room's members and messages.
    Room,
    /// A calculation task's result.
    Task,
    /// A tournament's players, choices and draw.
    Tournament,
}

impl ViewKind {
    /// Its name in frames and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Self::Race => "race",
            Self::Participant => "participant",
            Self::Room => "room",
            Self::Task => "task",
            Self::Tournament => "tournament",
        }
    }
}

/// What a client sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Subscribe to a view: a snapshot (or what was missed since `since`),
    /// then its deltas.
    Subscribe {
        /// Which view.
        view: ViewKind,
        /// Its id.
        id: String,
        /// The participant, with view `participant` (and only then).
        #[serde(default)]
        participant: Option<String>,
        /// The last seq the client holds.
        #[serde(default)]
        since: Option<u64>,
        /// With view `race`: only this window of the ranking (a subscribe
        /// with a window to a race already followed moves the window).
        #[serde(default)]
        window: Option<WindowSpec>,
    },
    /// End a subscription.
    Unsubscribe {
        /// Which view.
        view: ViewKind,
        /// Its id.
        id: String,
        /// The participant, with view `participant`.
        #[serde(default)]
        participant: Option<String>,
    },
    /// Ask for a `pong`.
    Ping {
        /// Echoed back.
        #[serde(default)]
        nonce: Option<u64>,
    },
    /// Join a room (the connection's room if none is named).
    Join {
        /// The room.
        #[serde(default)]
        room: Option<String>,
    },
    /// Leave a room.
    Leave {
        /// The room.
        #[serde(default)]
        room: Option<String>,
    },
    /// Post to a room.
    Post {
        /// The room.
        #[serde(default)]
        room: Option<String>,
        /// The message.
        text: String,
        /// Echoed in the ack and the message.
        #[serde(default)]
        client_msg_id: Option<String>,
    },
    /// Mark a room read up to `seq` (a member's read marker).
    Read {
        /// The room.
        #[serde(default)]
        room: Option<String>,
        /// The seq read up to.
        seq: u64,
    },
}

/// A room action acknowledged by an `ack` frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomOp {
    /// `join`.
    Join,
    /// `leave`.
    Leave,
    /// `post`.
    Post,
    /// `read`.
    Read,
}

impl RoomOp {
    /// Its name in frames and errors.
    pub fn name(self) -> &'static str {
        match self {
            Self::Join => "join",
            Self::Leave => "leave",
            Self::Post => "post",
            Self::Read => "read",
        }
    }
}

/// What the edge sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    /// A resumed race subscription: the deltas after `since` follow.
    Resumed {
        /// The view (`race`).
        view: ViewKind,
        /// Its id.
        id: &'a str,
        /// What the client had.
        since: u64,
        /// Where the deltas that follow bring it.
        seq: u64,
    },
    /// A subscription ended at the client's request.
    Unsubscribed {
        /// The view.
        view: ViewKind,
        /// Its id.
        id: &'a str,
        /// The participant, with view `participant`.
        participant: Option<&'a str>,
    },
    /// A room action the broker has.
    Ack {
        /// Which.
        op: RoomOp,
        /// In which room.
        room: &'a str,
        /// The client's id for it.
        client_msg_id: Option<&'a str>,
    },
    /// The answer to a `ping`.
    Pong {
        /// The ping's nonce.
        nonce: Option<u64>,
    },
    /// Something the client asked for was refused.
    Error {
        /// What kind of refusal.
        code: ErrorCode,
        /// What a person reads.
        message: &'a str,
    },
    /// The edge is going: connect again after `after_ms`.
    Reconnect {
        /// Why (`shutdown`).
        reason: &'a str,
        /// How long to wait, ms.
        after_ms: u64,
    },
}

/// What a participant's device sends on `WS /ws/track`. The point stays
/// the bytes the device sent (a refused one is dead-lettered as received),
/// so this is a struct whose `type` serde types, not a tagged enum.
#[derive(Debug, Deserialize)]
pub struct DeviceFrame<'a> {
    /// What the frame is.
    #[serde(rename = "type")]
    pub kind: DeviceKind,
    /// The device's number for the point, echoed in the answer.
    #[serde(rename = "ref", default)]
    pub reference: Option<u64>,
    /// The point, as sent.
    #[serde(borrow, default)]
    pub point: Option<&'a serde_json::value::RawValue>,
    /// A ping's nonce, echoed in the pong as sent.
    #[serde(borrow, default)]
    pub nonce: Option<&'a serde_json::value::RawValue>,
}

/// The `type` of a [`DeviceFrame`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// A GPS point.
    Point,
    /// Asks for a pong.
    Ping,
    /// Anything else (refused as `bad_frame`, with its `ref`).
    #[serde(other)]
    Unknown,
}

/// What the edge answers a device.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DeviceServerFrame<'a> {
    /// The broker has the point.
    Ack {
        /// The point's `ref`.
        #[serde(rename = "ref")]
        reference: Option<u64>,
        /// Where it is in `pace.gps`.
        partition: i32,
        /// Its offset there.
        offset: i64,
    },
    /// The point (or frame) was refused.
    Error {
        /// Why.
        code: DeviceError,
        /// The point's `ref`, if the frame had one.
        #[serde(rename = "ref")]
        reference: Option<u64>,
        /// What a person reads.
        message: &'a str,
    },
    /// The answer to a ping.
    Pong {
        /// The ping's nonce, as sent.
        nonce: Option<&'a serde_json::value::RawValue>,
    },
    /// The edge is going: connect again after `after_ms`.
    Reconnect {
        /// Why (`shutdown`).
        reason: &'a str,
        /// How long to wait, ms.
        after_ms: u64,
    },
}

/// The code of a device's `error` frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceError {
    /// Not a frame of the protocol.
    BadFrame,
    /// The point breaks a rule.
    Invalid,
    /// The point is another participant's.
    Forbidden,
    /// Over the participant's point budget.
    RateLimited,
    /// The broker did not take it.
    Unavailable,
    /// A missing or bad token.
    Unauthorized,
}

impl DeviceServerFrame<'_> {
    /// The frame as text.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("frames serialize")
    }
}

/// A view's snapshot or delta: `{"type": "snapshot" | "delta", "view": …,
/// …}`. The body is the view module's own type, an enum tagged by `view`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ViewFrame<'a, B> {
    Snapshot(&'a B),
    Delta(&'a B),
}

/// `body` (a view's, tagged by `view`) as a `snapshot` frame, once.
pub fn snapshot<B: Serialize>(body: &B) -> Frame {
    encode(&ViewFrame::Snapshot(body))
}

/// `body` (a view's, tagged by `view`) as a `delta` frame, once.
pub fn delta<B: Serialize>(body: &B) -> Frame {
    encode(&ViewFrame::Delta(body))
}

fn encode<T: Serialize>(frame: &T) -> Frame {
    serde_json::to_string(frame)
        .expect("frames serialize")
        .into()
}

impl ServerFrame<'_> {
    /// The frame as text, once.
    pub fn encode(&self) -> Frame {
        encode(self)
    }
}

/// An `error` frame.
pub fn error_frame(code: ErrorCode, message: &str) -> Frame {
    ServerFrame::Error { code, message }.encode()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_their_type_then_their_view() {
        /// A view's body, as a view module declares it.
        #[derive(Serialize)]
        #[serde(tag = "view", rename_all = "snake_case")]
        enum Body<'a> {
            Task { id: &'a str, seq: u64 },
        }
        let f = snapshot(&Body::Task { id: "t", seq: 0 });
        assert_eq!(
            f.as_str(),
            r#"{"type":"snapshot","view":"task","id":"t","seq":0}"#
        );
        let d = delta(&Body::Task { id: "t", seq: 1 });
        assert_eq!(
            d.as_str(),
            r#"{"type":"delta","view":"task","id":"t","seq":1}"#
        );
        let e = error_frame(ErrorCode::UnknownTournament, "no");
        assert_eq!(
            e.as_str(),
            r#"{"type":"error","code":"unknown_tournament","message":"no"}"#
        );
        for code in [ErrorCode::BadFrame, ErrorCode::TooManySubscriptions] {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::from(code.name())
            );
        }
    }

    #[test]
    fn client_frames_are_typed_or_refused() {
        let f: ClientFrame =
            serde_json::from_str(r#"{"type":"subscribe","view":"tournament","id":"cup"}"#).unwrap();
        assert!(matches!(
            f,
            ClientFrame::Subscribe {
                view: ViewKind::Tournament,
                ..
            }
        ));
        assert!(
            serde_json::from_str::<ClientFrame>(r#"{"type":"subscribe","view":"x","id":"a"}"#)
                .is_err()
        );
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"ping","extra":1}"#).is_err());
    }
}
