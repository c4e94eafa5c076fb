//! The JSON wire format: [`decode`] turns a payload into a validated record or
//! a [`DecodeError`] that says what is wrong.

use serde::de::DeserializeOwned;

pub use crate::validate::{MAX_DEFINITION_BYTES, MAX_PAYLOAD_BYTES};
use crate::validate::{Validate, ValidationError};

/// Why a payload was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The payload is over [`MAX_PAYLOAD_BYTES`].
    #[error("payload of {size} bytes is over the {max} byte limit")]
    TooLarge {
        /// Payload size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A record without a payload (a tombstone).
    #[error("empty payload")]
    Empty,
    /// Not JSON, or not the record's shape.
    #[error("malformed JSON at line {line} column {column}: {message}")]
    Json {
        /// What serde said.
        message: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// JSON of the right shape that breaks a rule.
    #[error("invalid {0}")]
    Invalid(#[from] ValidationError),
}

impl DecodeError {
    /// A short, bounded label for metrics (`too_large`, `empty`, `json`, `invalid`).
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::Empty => "empty",
            DecodeError::Json { .. } => "json",
            DecodeError::Invalid(_) => "invalid",
        }
    }
}

/// Decodes and validates one record.
pub fn decode<T: DeserializeOwned + Validate>(payload: &[u8]) -> Result<T, DecodeError> {
    if payload.is_empty() {
        return Err(DecodeError::Empty);
    }
    if payload.len() > T::MAX_PAYLOAD_BYTES {
        return Err(DecodeError::TooLarge {
            size: payload.len(),
            max: T::MAX_PAYLOAD_BYTES,
        });
    }
    let record: T = serde_json::from_slice(payload).map_err(|e| DecodeError::Json {
        message: e.to_string(),
        line: e.line(),
        column: e.column(),
    })?;
    record.validate()?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::*;
    use crate::time::Timestamp;

    const GPS: &str = r#"{"race":"r1","participant":"p1","time":"2025-01-19T02:10:00Z","lat":-36.84,"lon":174.76}"#;

    fn gps_err(json: &str) -> String {
        decode::<GpsPoint>(json.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn good_gps_point() {
        let p: GpsPoint = decode(GPS.as_bytes()).unwrap();
        assert_eq!(p.participant, "p1");
        assert_eq!(p.time, Timestamp(1_737_252_600_000));
        assert_eq!(p.elevation, None);
        let again: GpsPoint = decode(serde_json::to_vec(&p).unwrap().as_slice()).unwrap();
        assert_eq!(again, p);
    }

    #[test]
    fn bad_gps_points_name_field_and_reason() {
        assert_eq!(
            gps_err(&GPS.replace("-36.84", "-91")),
            "invalid lat: -91 is outside -90..=90"
        );
        assert_eq!(
            gps_err(&GPS.replace("174.76", "180.5")),
            "invalid lon: 180.5 is outside -180..=180"
        );
        assert_eq!(
            gps_err(&GPS.replace("\"p1\"", "\"\"")),
            "invalid participant: must not be empty"
        );
        assert!(gps_err(&GPS.replace("2025", "1970")).starts_with("invalid time:"));
        assert!(gps_err(&GPS.replace("-36.84", "NaN")).starts_with("malformed JSON"));
        assert!(gps_err(&GPS.replace("-36.84", "\"x\"")).starts_with("malformed JSON"));
        assert!(gps_err(&GPS.replace("}", ",\"extra\":1}")).contains("unknown field"));
        assert!(gps_err(r#"{"race":"r1"}"#).contains("missing field"));
        assert!(gps_err("{not json").starts_with("malformed JSON at line 1"));
        assert!(gps_err(&GPS.replace("}", ",\"accuracy\":-1}")).starts_with("invalid accuracy"));
        assert_eq!(decode::<GpsPoint>(b"").unwrap_err(), DecodeError::Empty);
        let huge = format!("{}{}", GPS, " ".repeat(MAX_PAYLOAD_BYTES));
        assert_eq!(
            decode::<GpsPoint>(huge.as_bytes()).unwrap_err().kind(),
            "too_large"
        );
    }

    #[test]
    fn race_definitions() {
        let course = r#"{"id":"r1","name":"10K","start":"2026-05-01T08:00:00Z",
            "kind":{"type":"course","polyline":[{"lat":0,"lon":0},{"lat":0,"lon":0.1}],"loop":true},"laps":3}"#;
        let r: RaceDefinition = decode(course.as_bytes()).unwrap();
        assert_eq!(r.kind.name(), "course");
        assert_eq!(r.laps, 3);
        let bad = course.replace(r#""lon":0.1"#, r#""lon":200"#);
        assert_eq!(
            decode::<RaceDefinition>(bad.as_bytes())
                .unwrap_err()
                .to_string(),
            "invalid kind.polyline[1].lon: 200 is outside -180..=180"
        );
        let cut = course.replace(r#""laps":3"#, r#""laps":3,"cutoff":"2026-05-01T07:00:00Z""#);
        assert_eq!(
            decode::<RaceDefinition>(cut.as_bytes())
                .unwrap_err()
                .to_string(),
            "invalid cutoff: must be after start"
        );
        // A long participant list fits a definition, not a GPS point.
        let mut big = r.clone();
        big.participants = (0..5000)
            .map(|i| Participant {
                id: format!("bib-{i:05}"),
                name: format!("Runner number {i}"),
                wave: None,
                ..Default::default()
            })
            .collect();
        let bytes = serde_json::to_vec(&big).unwrap();
        assert!(bytes.len() > MAX_PAYLOAD_BYTES);
        assert_eq!(
            decode::<RaceDefinition>(&bytes).unwrap().participants.len(),
            5000
        );
        let marks = r#"{"id":"s1","name":"Race 1","start":"2025-01-19T02:10:00Z","kind":{"type":"marks",
            "start":[{"lat":1,"lon":1},{"lat":1,"lon":1.01}],
            "marks":[{"name":"M1","points":[{"lat":1.1,"lon":1}]},{"name":"G","points":[]}],
            "finish":[{"lat":1,"lon":1},{"lat":1,"lon":1.01}]}}"#;
        assert_eq!(
            decode::<RaceDefinition>(marks.as_bytes())
                .unwrap_err()
                .to_string(),
            "invalid kind.marks[1].points: 0 points; a mark has 1, a gate 2"
        );
    }

    #[test]
    fn entrants_are_strict_and_name_the_field_at_fault() {
        let good = r#"{"race":"boston-2015","participant":"F11","name":"Rotich, Caroline","gender":"F","category":"F18-39"}"#;
        let e: Entrant = decode(good.as_bytes()).unwrap();
        assert_eq!(e.listing().id, "F11");
        assert_eq!(e.wave, None);
        let again: Entrant = decode(serde_json::to_vec(&e).unwrap().as_slice()).unwrap();
        assert_eq!(again, e);
        let err = |json: &str| decode::<Entrant>(json.as_bytes()).unwrap_err().to_string();
        for (json, says) in [
            (r#"{"race":"r","participant":""}"#, "participant"),
            (r#"{"race":"","participant":"p"}"#, "race"),
            (r#"{"race":"r","participant":"p","gender":" F"}"#, "gender"),
            (
                r#"{"race":"r","participant":"p","category":""}"#,
                "category",
            ),
            (r#"{"race":"r","participant":"p","sex":"F"}"#, "sex"),
        ] {
            let e = err(json);
            assert!(e.contains(says), "{json}: {e}");
        }
    }

    #[test]
    fn chat_and_calc() {
        let msg =
            r#"{"room":"lobby","user":"ann","kind":"message","text":"hi","time":1737252600000}"#;
        let e: ChatEvent = decode(msg.as_bytes()).unwrap();
        assert_eq!(e.kind, ChatKind::Message);
        let long = msg.replace("\"hi\"", &format!("\"{}\"", "x".repeat(4097)));
        assert_eq!(
            decode::<ChatEvent>(long.as_bytes())
                .unwrap_err()
                .to_string(),
            "invalid text: 4097 bytes, at most 4096 allowed"
        );
        let join_with_text = msg.replace("message", "join");
        assert!(decode::<ChatEvent>(join_with_text.as_bytes()).is_err());
        let task = r#"{"id":"t1","expression":"1+1","time":"2026-01-01T00:00:00Z"}"#;
        assert!(decode::<CalcTask>(task.as_bytes()).is_ok());
        assert!(decode::<CalcTask>(task.replace("1+1", "").as_bytes()).is_err());
        let timing =
            r#"{"race":"r","participant":"p","line":"start","time":"2026-01-01T00:00:00Z"}"#;
        assert!(decode::<TimingCrossing>(timing.as_bytes()).is_ok());
    }
}

/// A wire record inside the dataflow. Between timely processes records
/// travel in bincode, which cannot carry what the JSON wire format relies
/// on (fields left out when empty, internally tagged enums, times that are
/// text or numbers); `Packed` carries its record as JSON bytes in formats
/// that are not human-readable, and as the record itself in those that are.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Packed<T>(pub T);

impl<T> std::ops::Deref for Packed<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: serde::Serialize> serde::Serialize for Packed<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            self.0.serialize(s)
        } else {
            let bytes = serde_json::to_vec(&self.0).map_err(serde::ser::Error::custom)?;
            s.serialize_bytes(&bytes)
        }
    }
}

impl<'de, T: DeserializeOwned> serde::Deserialize<'de> for Packed<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            T::deserialize(d).map(Packed)
        } else {
            let bytes = <Vec<u8>>::deserialize(d)?;
            serde_json::from_slice(&bytes)
                .map(Packed)
                .map_err(serde::de::Error::custom)
        }
    }
}
