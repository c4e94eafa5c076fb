//! Strict validation of decoded records.
//!
//! Every check returns a [`ValidationError`] naming the offending field (a path
//! such as `polyline[3].lat`) and the reason, so a dead letter or an HTTP 400
//! tells the sender exactly what to fix.

use std::fmt;

use crate::time::Timestamp;

/// Longest id (race, participant, room, user, task, timing line), in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// Longest display name, in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// Longest chat text or calc expression, in bytes (4 KiB).
pub const MAX_TEXT_BYTES: usize = 4096;
/// Most points in a course polyline, marks in a course or lines in a race.
pub const MAX_GEOMETRY_POINTS: usize = 20_000;
/// Most participants listed in a race definition.
pub const MAX_PARTICIPANTS: usize = 20_000;

/// A record that breaks a rule: which field, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ValidationError {
    /// Path of the field, e.g. `lat` or `kind.polyline[3].lon`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ValidationError {
    /// An error for `field` with `reason`.
    pub fn new(field: impl Into<String>, reason: impl fmt::Display) -> Self {
        Self {
            field: field.into(),
            reason: reason.to_string(),
        }
    }

    /// The same error under a parent path (`kind` + `lat` = `kind.lat`).
    pub fn within(mut self, parent: impl fmt::Display) -> Self {
        self.field = if self.field.starts_with('[') {
            format!("{parent}{}", self.field)
        } else {
            format!("{parent}.{}", self.field)
        };
        self
    }
}

/// Largest payload of a device record (64 KiB).
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Largest payload of a race definition (512 KiB: course polylines and
/// participant lists are long; still well under Kafka's 1 MB default).
pub const MAX_DEFINITION_BYTES: usize = 512 * 1024;

/// A record that can check itself.
pub trait Validate {
    /// Largest payload of this record type, in bytes. 64 KiB for everything a
    /// device sends; larger for race definitions, which carry course geometry.
    const MAX_PAYLOAD_BYTES: usize = self::MAX_PAYLOAD_BYTES;
    /// Whether a record may hold a secret (a password hash): one that fails
    /// to decode is dead-lettered without its payload, and its reason
    /// names only the kind of failure.
    const SECRET: bool = false;

    /// `Ok` when every field is within its rules; otherwise the first broken rule.
    fn validate(&self) -> Result<(), ValidationError>;
}

/// An id: non-empty, at most [`MAX_ID_BYTES`], no control characters or whitespace at the ends.
pub fn id(field: &str, v: &str) -> Result<(), ValidationError> {
    if v.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if v.len() > MAX_ID_BYTES {
        return Err(ValidationError::new(
            field,
            format_args!("{} bytes, at most {MAX_ID_BYTES} allowed", v.len()),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(ValidationError::new(field, "contains a control character"));
    }
    if v.trim() != v {
        return Err(ValidationError::new(
            field,
            "has leading or trailing whitespace",
        ));
    }
    Ok(())
}

/// Longest room id, in bytes.
pub const MAX_ROOM_ID_BYTES: usize = 64;

/// A room id: 1 to [`MAX_ROOM_ID_BYTES`] of ASCII letters, digits, `.`,
/// `_`, `~` and `-`, starting with a letter or digit. These are the
/// characters a URL path segment carries as they are, so every route
/// (`/api/rooms/{id}/…`, `/ws/rooms/{id}`) reaches every room.
pub fn room_id(field: &str, v: &str) -> Result<(), ValidationError> {
    if v.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if v.len() > MAX_ROOM_ID_BYTES {
        return Err(ValidationError::new(
            field,
            format_args!("{} bytes, at most {MAX_ROOM_ID_BYTES} allowed", v.len()),
        ));
    }
    if !v.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(ValidationError::new(
            field,
            "must start with a letter or a digit",
        ));
    }
    if let Some(c) = v
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-')))
    {
        return Err(ValidationError::new(
            field,
            format_args!("{c:?} is not allowed (letters, digits, '.', '_', '~', '-')"),
        ));
    }
    Ok(())
}

/// Free text of at most `max` bytes with no NUL.
pub fn text(field: &str, v: &str, max: usize) -> Result<(), ValidationError> {
    if v.len() > max {
        return Err(ValidationError::new(
            field,
            format_args!("{} bytes, at most {max} allowed", v.len()),
        ));
    }
    if v.contains('\0') {
        return Err(ValidationError::new(field, "contains a NUL character"));
    }
    Ok(())
}

/// A time within the sane range (years 2000 to 2100).
pub fn time(field: &str, t: Timestamp) -> Result<(), ValidationError> {
    if t.is_sane() {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format_args!("{t} is outside 2000-01-01..2100-01-01"),
        ))
    }
}

/// A finite number within `lo..=hi`.
pub fn finite_in(field: &str, v: f64, lo: f64, hi: f64) -> Result<(), ValidationError> {
    if !v.is_finite() {
        return Err(ValidationError::new(field, "must be a finite number"));
    }
    if v < lo || v > hi {
        return Err(ValidationError::new(
            field,
            format_args!("{v} is outside {lo}..={hi}"),
        ));
    }
    Ok(())
}

/// A list of at most `max` items.
pub fn bounded_len<T>(field: &str, v: &[T], max: usize) -> Result<(), ValidationError> {
    if v.len() > max {
        Err(ValidationError::new(
            field,
            format_args!("{} items, at most {max} allowed", v.len()),
        ))
    } else {
        Ok(())
    }
}

/// Validates each item, naming the failing one by index.
pub fn each<T: Validate>(field: &str, items: &[T]) -> Result<(), ValidationError> {
    for (i, item) in items.iter().enumerate() {
        item.validate()
            .map_err(|e| e.within(format_args!("{field}[{i}]")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(id("race", "r1").is_ok());
        assert_eq!(
            id("race", "").unwrap_err().to_string(),
            "race: must not be empty"
        );
        assert!(
            id("race", &"x".repeat(129))
                .unwrap_err()
                .reason
                .contains("129 bytes")
        );
        assert!(id("race", "a\nb").is_err());
        assert!(id("race", " a").is_err());
    }

    #[test]
    fn room_ids_are_what_a_path_segment_carries() {
        for ok in ["lobby", "irc", "Room-1", "a.b_c~d", "7", &"x".repeat(64)] {
            assert!(room_id("room", ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "a b",
            "a/b",
            "50%",
            ".hidden",
            "-x",
            "zero\u{200b}width",
            "bidi\u{202e}x",
            "#ubuntu",
            "café",
            &"x".repeat(65),
        ] {
            assert!(room_id("room", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn numbers() {
        assert!(finite_in("lat", 90.0, -90.0, 90.0).is_ok());
        assert!(
            finite_in("lat", f64::NAN, -90.0, 90.0)
                .unwrap_err()
                .reason
                .contains("finite")
        );
        assert!(finite_in("lat", 90.0001, -90.0, 90.0).is_err());
    }

    #[test]
    fn nested_paths() {
        let e = ValidationError::new("lat", "bad")
            .within("polyline[3]")
            .within("kind");
        assert_eq!(e.field, "kind.polyline[3].lat");
    }
}
