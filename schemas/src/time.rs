//! [`Timestamp`]: a UTC instant in whole milliseconds.
//!
//! On the wire it is an RFC 3339 string (`"2025-01-19T02:10:00.250Z"`); an
//! integer number of milliseconds since the Unix epoch is accepted too, since
//! devices often have nothing else.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

/// Earliest time pace accepts: 2000-01-01T00:00:00Z.
pub const MIN_TIME: Timestamp = Timestamp(946_684_800_000);
/// Latest time pace accepts: 2100-01-01T00:00:00Z.
pub const MAX_TIME: Timestamp = Timestamp(4_102_444_800_000);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        Timestamp(Utc::now().timestamp_millis())
    }

    /// Milliseconds since the Unix epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// Seconds from this time to now (0 if it lies ahead): a latency.
    pub fn elapsed_s(self) -> f64 {
        (Timestamp::now().0 - self.0).max(0) as f64 / 1000.0
    }

    /// Whether this lies in the range pace accepts ([`MIN_TIME`]..[`MAX_TIME`]).
    pub fn is_sane(self) -> bool {
        (MIN_TIME..MAX_TIME).contains(&self)
    }

    /// Parses RFC 3339 (`2025-01-19T02:10:00Z`, any offset).
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| Timestamp(t.timestamp_millis()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match DateTime::<Utc>::from_timestamp_millis(self.0) {
            Some(t) => f.write_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true)),
            None => write!(f, "{}ms", self.0),
        }
    }
}

impl Serialize for Timestamp {
    /// RFC 3339 text in human-readable formats (JSON); milliseconds in
    /// binary ones (bincode, between timely processes).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 time or integer milliseconds since the Unix epoch")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse_rfc3339(v)
                    .ok_or_else(|| E::custom(format_args!("not an RFC 3339 time: {v:?}")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Ok(Timestamp(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                i64::try_from(v)
                    .map(Timestamp)
                    .map_err(|_| E::custom("time out of range"))
            }
        }
        if d.is_human_readable() {
            d.deserialize_any(V)
        } else {
            i64::deserialize(d).map(Timestamp)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip_and_millis() {
        let t: Timestamp = serde_json::from_str("\"2025-01-19T02:10:00.250Z\"").unwrap();
        assert_eq!(t.0, 1_737_252_600_250);
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2025-01-19T02:10:00.250Z\""
        );
        let n: Timestamp = serde_json::from_str("1737252600250").unwrap();
        assert_eq!(n, t);
        let offset: Timestamp = serde_json::from_str("\"2025-01-19T15:10:00.250+13:00\"").unwrap();
        assert_eq!(offset, t);
    }

    #[test]
    fn rejects_garbage_and_floats() {
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
        assert!(serde_json::from_str::<Timestamp>("1.5").is_err());
        assert!(!Timestamp(0).is_sane());
        assert!(Timestamp(1_737_252_600_250).is_sane());
    }
}
