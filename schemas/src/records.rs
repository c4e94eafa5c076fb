//! Input records: what devices, apps and replays produce to the input
//! topics. Race definitions and entrants are in [`crate::race`] (and
//! re-exported here).
//!
//! Each is strict JSON (`deny_unknown_fields`); [`Validate`] checks the rules
//! the type system cannot.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::race::*;
use crate::time::Timestamp;
use crate::validate::{self as v, Validate, ValidationError};

/// A WGS 84 position, degrees.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatLon {
    /// Latitude, -90..=90.
    pub lat: f64,
    /// Longitude, -180..=180.
    pub lon: f64,
}

/// Mean Earth radius, metres (IUGG).
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

impl LatLon {
    /// Great-circle distance to `other`, metres (haversine).
    pub fn distance_m(self, other: LatLon) -> f64 {
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dp = p2 - p1;
        let dl = (other.lon - self.lon).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
    }

    /// The point `east_m` metres east and `north_m` metres north (flat-earth
    /// approximation, good to a few centimetres over a few kilometres).
    pub fn offset_m(self, east_m: f64, north_m: f64) -> LatLon {
        let m_per_deg = EARTH_RADIUS_M.to_radians();
        LatLon {
            lat: self.lat + north_m / m_per_deg,
            lon: self.lon + east_m / (m_per_deg * self.lat.to_radians().cos()),
        }
    }
}

impl Validate for LatLon {
    fn validate(&self) -> Result<(), ValidationError> {
        v::finite_in("lat", self.lat, -90.0, 90.0)?;
        v::finite_in("lon", self.lon, -180.0, 180.0)
    }
}

/// One GPS fix of one participant in one race (topic `pace.gps`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpsPoint {
    /// Race id.
    pub race: String,
    /// Participant id (bib, boat, driver), unique within the race.
    pub participant: String,
    /// When the fix was taken (device clock, UTC).
    pub time: Timestamp,
    /// Latitude, degrees, -90..=90.
    pub lat: f64,
    /// Longitude, degrees, -180..=180.
    pub lon: f64,
    /// Elevation above the WGS 84 ellipsoid, metres, -1000..=10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elevation: Option<f64>,
    /// Horizontal accuracy (radius), metres, 0..=10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
}

impl GpsPoint {
    /// The point's position.
    pub fn position(&self) -> LatLon {
        LatLon {
            lat: self.lat,
            lon: self.lon,
        }
    }
}

impl Validate for GpsPoint {
    fn validate(&self) -> Result<(), ValidationError> {
        v::id("race", &self.race)?;
        v::id("participant", &self.participant)?;
        v::time("time", self.time)?;
        v::finite_in("lat", self.lat, -90.0, 90.0)?;
        v::finite_in("lon", self.lon, -180.0, 180.0)?;
        if let Some(e) = self.elevation {
            v::finite_in("elevation", e, -1000.0, 10_000.0)?;
        }
        if let Some(a) = self.accuracy {
            v::finite_in("accuracy", a, 0.0, 10_000.0)?;
        }
        Ok(())
    }
}

/// A participant crossing a timing line (chip mat, start/finish line) (topic `pace.timing`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimingCrossing {
    /// Race id.
    pub race: String,
    /// Participant id.
    pub participant: String,
    /// Timing line id, as in the race definition.
    pub line: String,
    /// When the line was crossed.
    pub time: Timestamp,
}

impl Validate for TimingCrossing {
    fn validate(&self) -> Result<(), ValidationError> {
        v::id("race", &self.race)?;
        v::id("participant", &self.participant)?;
        v::id("line", &self.line)?;
        v::time("time", self.time)
    }
}

/// What a chat event does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatKind {
    /// The user joins the room.
    Join,
    /// The user leaves the room.
    Leave,
    /// The user posts `text`.
    Message,
    /// The user creates the room, public or invite-only, and is its first member.
    Create,
    /// The user, a member, invites `invitee` (who may then join an invite-only room).
    Invite,
    /// A connection of the user to the room opened (written by the edge).
    Connect,
    /// A connection of the user to the room closed (written by the edge).
    Disconnect,
    /// The user, a member, has read the room up to `seq` (a read marker).
    Read,
    /// An edge's lease on the room (written by the edge, every
    /// [`LEASE_EVERY_MS`], for each room with anyone online): who is
    /// connected to the room through it (`present`) as of `time`. An
    /// edge not heard of in a room for [`LEASE_MS`] (by the times of the
    /// room's events) has died: its connections there close.
    Lease,
}

/// How often an edge renews its leases, milliseconds.
pub const LEASE_EVERY_MS: i64 = 10_000;
/// How long an edge's lease on a room lasts, milliseconds: past it, with
/// nothing heard from the edge, its connections to the room close. With
/// leases renewed every [`LEASE_EVERY_MS`] by every edge, a dead edge's
/// users go offline at most `LEASE_MS + LEASE_EVERY_MS` after its last
/// renewal, and one renewal may be lost without it.
pub const LEASE_MS: i64 = 20_000;
/// Most users one lease names.
pub const MAX_PRESENT: usize = 10_000;

/// A chat event in a room (topic `pace.chat`, keyed by room, so a room's
/// events keep their order).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatEvent {
    /// Room id.
    pub room: String,
    /// User id.
    pub user: String,
    /// What happens.
    pub kind: ChatKind,
    /// The message text (messages only), at most 4 KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The client's own id for the message, to recognise its echo and retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
    /// Who may read and join (creates only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
    /// Who is invited (invites; and the other of a direct conversation's
    /// create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invitee: Option<String>,
    /// The seq read up to (read markers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The edge a connection is through (connects, disconnects, leases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge: Option<String>,
    /// Who is connected through the edge, with how many connections
    /// (leases only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub present: Option<BTreeMap<String, u32>>,
    /// When the event happened.
    pub time: Timestamp,
}

/// Who may read and join a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Anyone.
    Public,
    /// Members and invited users only.
    InviteOnly,
    /// A conversation of two users: only they read and post, nobody is
    /// invited. Its id is [`direct_room`] of the two.
    Direct,
}

/// The id of the direct conversation of users `a` and `b` (in either
/// order): `dm~` and 32 hex digits of the SHA-256 of the two names, so
/// that either of them opening it opens the same one, and no one opens it
/// under another id.
pub fn direct_room(a: &str, b: &str) -> String {
    debug_assert!(DIRECT_PREFIX.len() == 3);
    use sha2::Digest;
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    let digest = sha2::Sha256::digest(format!("{first}\n{second}").as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{DIRECT_PREFIX}{hex}")
}

/// How the id of every direct conversation begins; no other room's does.
pub const DIRECT_PREFIX: &str = "dm~";

impl Validate for ChatEvent {
    fn validate(&self) -> Result<(), ValidationError> {
        v::room_id("room", &self.room)?;
        v::id("user", &self.user)?;
        v::time("time", self.time)?;
        if let Some(id) = &self.client_msg_id {
            v::id("client_msg_id", id)?;
        }
        match (self.kind, &self.visibility) {
            (ChatKind::Create, None) => {
                return Err(ValidationError::new("visibility", "a create needs it"));
            }
            (ChatKind::Create, Some(_)) | (_, None) => {}
            (_, Some(_)) => {
                return Err(ValidationError::new(
                    "visibility",
                    "only a create carries it",
                ));
            }
        }
        let direct = self.visibility == Some(Visibility::Direct);
        if self.kind == ChatKind::Create && self.room.starts_with(DIRECT_PREFIX) && !direct {
            return Err(ValidationError::new(
                "room",
                format_args!("ids beginning {DIRECT_PREFIX:?} are direct conversations'"),
            ));
        }
        match (self.kind, &self.invitee) {
            (ChatKind::Invite, Some(u)) => v::id("invitee", u)?,
            (ChatKind::Create, Some(u)) if direct => {
                v::id("invitee", u)?;
                if *u == self.user || self.room != direct_room(&self.user, u) {
                    return Err(ValidationError::new(
                        "room",
                        "a direct conversation is two users' own: its id is direct_room(user, invitee)",
                    ));
                }
            }
            (ChatKind::Create, None) if direct => {
                return Err(ValidationError::new(
                    "invitee",
                    "a direct conversation names the other user",
                ));
            }
            (ChatKind::Invite, None) => {
                return Err(ValidationError::new("invitee", "an invite needs one"));
            }
            (_, Some(_)) => {
                return Err(ValidationError::new(
                    "invitee",
                    "only an invite carries one",
                ));
            }
            (_, None) => {}
        }
        match (self.kind, self.seq) {
            (ChatKind::Read, None) => {
                return Err(ValidationError::new("seq", "a read marker needs one"));
            }
            (ChatKind::Read, Some(_)) | (_, None) => {}
            (_, Some(_)) => {
                return Err(ValidationError::new(
                    "seq",
                    "only a read marker carries one",
                ));
            }
        }
        if let Some(edge) = &self.edge {
            if !matches!(
                self.kind,
                ChatKind::Connect | ChatKind::Disconnect | ChatKind::Lease
            ) {
                return Err(ValidationError::new(
                    "edge",
                    "only a connect, disconnect or lease carries one",
                ));
            }
            v::id("edge", edge)?;
        }
        match (self.kind, &self.present, &self.edge) {
            (ChatKind::Lease, Some(present), Some(_)) => {
                if present.len() > MAX_PRESENT {
                    return Err(ValidationError::new(
                        "present",
                        format_args!("names at most {MAX_PRESENT} users"),
                    ));
                }
                for (user, n) in present {
                    v::id("present", user)?;
                    if *n == 0 {
                        return Err(ValidationError::new("present", "counts start at 1"));
                    }
                }
            }
            (ChatKind::Lease, _, _) => {
                return Err(ValidationError::new(
                    "present",
                    "a lease names its edge and who is present",
                ));
            }
            (_, Some(_), _) => {
                return Err(ValidationError::new("present", "only a lease carries it"));
            }
            (_, None, _) => {}
        }
        match (self.kind, &self.text) {
            (ChatKind::Message, Some(t)) if t.is_empty() => {
                Err(ValidationError::new("text", "must not be empty"))
            }
            (ChatKind::Message, Some(t)) => v::text("text", t, v::MAX_TEXT_BYTES),
            (ChatKind::Message, None) => Err(ValidationError::new("text", "a message needs text")),
            (_, Some(_)) => Err(ValidationError::new("text", "only a message carries text")),
            (_, None) => Ok(()),
        }
    }
}

/// An arithmetic task (topic `pace.calc`, keyed by id).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalcTask {
    /// Task id; submitting the same id twice yields one result.
    pub id: String,
    /// The expression, at most 4 KiB.
    pub expression: String,
    /// When it was submitted.
    pub time: Timestamp,
}

impl Validate for CalcTask {
    fn validate(&self) -> Result<(), ValidationError> {
        v::id("id", &self.id)?;
        if self.expression.is_empty() {
            return Err(ValidationError::new("expression", "must not be empty"));
        }
        v::text("expression", &self.expression, v::MAX_TEXT_BYTES)?;
        v::time("time", self.time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        // One degree of latitude is about 111.2 km.
        let a = LatLon { lat: 0.0, lon: 0.0 };
        let d = a.distance_m(LatLon { lat: 1.0, lon: 0.0 });
        assert!((d - 111_195.0).abs() < 1.0, "{d}");
        let b = LatLon {
            lat: 59.33,
            lon: 18.07,
        };
        let c = b.offset_m(300.0, -400.0);
        assert!((b.distance_m(c) - 500.0).abs() < 0.5);
        assert_eq!(b.distance_m(b), 0.0);
    }
}
