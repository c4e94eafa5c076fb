//! Why the edge refuses what a client sent: the code of the `error` frame
//! ([`ErrorCode`]) and the message beside it ([`Refused`]).

use serde::Serialize;

/// The code of an `error` frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not a frame of the protocol.
    BadFrame,
    /// No such race.
    UnknownRace,
    /// No such room, or not one the user may see.
    UnknownRoom,
    /// No such tournament.
    UnknownTournament,
    /// Subscribed to that view already.
    AlreadySubscribed,
    /// No subscription to that view.
    NotSubscribed,
    /// The connection's subscription budget is spent.
    TooManySubscriptions,
    /// A missing or bad token.
    Unauthorized,
    /// Posting to a room the user has not joined.
    NotMember,
    /// A direct conversation that is not the user's (whether or not it
    /// exists).
    Forbidden,
    /// The event breaks a rule.
    Invalid,
    /// Too many frames or events.
    RateLimited,
    /// The broker did not take it.
    Unavailable,
}

impl ErrorCode {
    /// Its name on the wire (also the close reason when it ends a connection).
    pub fn name(self) -> &'static str {
        match self {
            Self::BadFrame => "bad_frame",
            Self::UnknownRace => "unknown_race",
            Self::UnknownRoom => "unknown_room",
            Self::UnknownTournament => "unknown_tournament",
            Self::AlreadySubscribed => "already_subscribed",
            Self::NotSubscribed => "not_subscribed",
            Self::TooManySubscriptions => "too_many_subscriptions",
            Self::Unauthorized => "unauthorized",
            Self::NotMember => "not_member",
            Self::Forbidden => "forbidden",
            Self::Invalid => "invalid",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
        }
    }
}

/// A refusal: the code and what a person reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused(pub ErrorCode, pub String);
