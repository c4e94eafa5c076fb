//! Race definitions (topic `pace.races`) and entrants (`pace.entrants`):
//! the kinds of race (course, marks, timing lines, chip-timing mats), the
//! rules they are judged by, waves, and what is listed of each participant.

use serde::{Deserialize, Serialize};

use crate::records::LatLon;
use crate::time::Timestamp;
use crate::validate::{self as v, Validate, ValidationError};

/// A mark to round (one point) or a gate to pass (two points).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mark {
    /// Display name, e.g. `M1` or `LG2`.
    pub name: String,
    /// One point for a mark, two for a gate or a line.
    pub points: Vec<LatLon>,
}

impl Validate for Mark {
    fn validate(&self) -> Result<(), ValidationError> {
        v::text("name", &self.name, v::MAX_NAME_BYTES)?;
        if !(1..=2).contains(&self.points.len()) {
            return Err(ValidationError::new(
                "points",
                format_args!("{} points; a mark has 1, a gate 2", self.points.len()),
            ));
        }
        v::each("points", &self.points)
    }
}

/// A timing line: a segment participants cross (start, finish, split mat).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimingLine {
    /// Line id, referenced by [`TimingCrossing::line`].
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Optional geometry, for GPS-derived crossings: the line's two ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends: Option<[LatLon; 2]>,
}

impl Validate for TimingLine {
    fn validate(&self) -> Result<(), ValidationError> {
        v::id("id", &self.id)?;
        v::text("name", &self.name, v::MAX_NAME_BYTES)?;
        if let Some(ends) = &self.ends {
            v::each("ends", ends)?;
        }
        Ok(())
    }
}

/// A chip-timing mat of a [`RaceKind::Mats`] race.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimingMat {
    /// Mat id, referenced by [`TimingCrossing::line`].
    pub id: String,
    /// Display name (`5K`, `Half`, …).
    #[serde(default)]
    pub name: String,
    /// Distance from the start mat, metres.
    pub distance_m: f64,
    /// A read more than this long after the runner's start (net or gun
    /// time, as the race's clock says), seconds, does not count: the runner
    /// missed the mat's cutoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutoff_s: Option<f64>,
}

impl Validate for TimingMat {
    fn validate(&self) -> Result<(), ValidationError> {
        v::id("id", &self.id)?;
        v::text("name", &self.name, v::MAX_NAME_BYTES)?;
        v::finite_in("distance_m", self.distance_m, 0.0, 1_000_000.0)?;
        if let Some(c) = self.cutoff_s {
            v::finite_in("cutoff_s", c, 1.0, 7.0 * 86_400.0)?;
        }
        Ok(())
    }
}

/// Which time ranks a chip-timed race.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Clock {
    /// From each runner's own start (their first start-mat read, or their
    /// wave's start if the start mat missed them): chip time.
    #[default]
    Net,
    /// From the gun (plus the runner's wave offset).
    Gun,
}

/// A wave of a chip-timed race: its runners start this long after the gun.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wave {
    /// Wave id, referenced by [`Participant::wave`].
    pub id: String,
    /// Its start after the gun, seconds.
    pub offset_s: f64,
}

impl Validate for Wave {
    fn validate(&self) -> Result<(), ValidationError> {
        v::id("id", &self.id)?;
        v::finite_in("offset_s", self.offset_s, 0.0, 86_400.0)
    }
}

/// What a race is raced over.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RaceKind {
    /// A road or trail course: a polyline, point to point or a loop.
    Course {
        /// The course, start to finish, at least two points.
        polyline: Vec<LatLon>,
        /// Whether the finish joins the start (a lap course).
        #[serde(default, rename = "loop")]
        is_loop: bool,
    },
    /// A sequence of marks and gates, as in sailing.
    Marks {
        /// The start line (two points).
        start: [LatLon; 2],
        /// The marks and gates in rounding order.
        marks: Vec<Mark>,
        /// The finish line (two points).
        finish: [LatLon; 2],
    },
    /// Timing lines; crossings of them count laps and splits.
    TimingLines {
        /// The lines, the start/finish line first.
        lines: Vec<TimingLine>,
    },
    /// Chip timing of a point-to-point road race: mats at the start, along
    /// the course and at the finish, each at its distance. A runner is
    /// ranked by the furthest mat read, then by their time there (net or
    /// gun, as [`RaceRules::clock`] says); a missed mat does not stop later
    /// ones from counting.
    Mats {
        /// The mats in course order: the start mat first, the finish last.
        mats: Vec<TimingMat>,
        /// The route, start mat to finish, when known: runners who also
        /// carry a GPS tracker are followed along it between mats, and the
        /// page draws it. Distances along it are scaled so that its end is
        /// the finish mat's distance (the mats' distances are the measured
        /// ones).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        course: Option<Vec<LatLon>>,
    },
}

impl RaceKind {
    /// `course`, `marks`, `timing_lines` or `mats`, as on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            RaceKind::Course { .. } => "course",
            RaceKind::Marks { .. } => "marks",
            RaceKind::TimingLines { .. } => "timing_lines",
            RaceKind::Mats { .. } => "mats",
        }
    }
}

impl Validate for RaceKind {
    fn validate(&self) -> Result<(), ValidationError> {
        match self {
            RaceKind::Course { polyline, .. } => {
                if polyline.len() < 2 {
                    return Err(ValidationError::new("polyline", "needs at least 2 points"));
                }
                v::bounded_len("polyline", polyline, v::MAX_GEOMETRY_POINTS)?;
                v::each("polyline", polyline)
            }
            RaceKind::Marks {
                start,
                marks,
                finish,
            } => {
                v::each("start", start)?;
                v::bounded_len("marks", marks, v::MAX_GEOMETRY_POINTS)?;
                v::each("marks", marks)?;
                v::each("finish", finish)
            }
            RaceKind::TimingLines { lines } => {
                if lines.is_empty() {
                    return Err(ValidationError::new("lines", "needs at least 1 line"));
                }
                v::bounded_len("lines", lines, v::MAX_GEOMETRY_POINTS)?;
                v::each("lines", lines)
            }
            RaceKind::Mats { mats, course } => {
                if let Some(course) = course {
                    if course.len() < 2 {
                        return Err(ValidationError::new("course", "needs at least 2 points"));
                    }
                    v::bounded_len("course", course, v::MAX_GEOMETRY_POINTS)?;
                    v::each("course", course)?;
                }
                if mats.len() < 2 {
                    return Err(ValidationError::new(
                        "mats",
                        "needs at least 2 mats (start and finish)",
                    ));
                }
                v::bounded_len("mats", mats, v::MAX_GEOMETRY_POINTS)?;
                v::each("mats", mats)?;
                if mats[0].distance_m != 0.0 {
                    return Err(ValidationError::new(
                        "mats",
                        "the first mat is the start, at 0 m",
                    ));
                }
                for (i, pair) in mats.windows(2).enumerate() {
                    if pair[1].distance_m <= pair[0].distance_m {
                        return Err(ValidationError::new(
                            format!("mats[{}].distance_m", i + 1),
                            "must be further than the mat before",
                        ));
                    }
                }
                let mut ids: Vec<&str> = mats.iter().map(|m| m.id.as_str()).collect();
                ids.sort_unstable();
                if ids.windows(2).any(|w| w[0] == w[1]) {
                    return Err(ValidationError::new("mats", "ids must be unique"));
                }
                Ok(())
            }
        }
    }
}

/// A participant listed in a race definition, or entered by an
/// [`Entrant`] record.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Participant {
    /// Participant id, as in [`GpsPoint::participant`].
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Their wave (chip-timed races), as in [`RaceRules::waves`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wave: Option<String>,
    /// Their gender as the race's results group it (`M`, `F`, …): positions
    /// at every split are also counted within it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    /// Their category (an age group such as `F40-44`, a team, a class):
    /// positions at every split are also counted within it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

impl Validate for Participant {
    fn validate(&self) -> Result<(), ValidationError> {
        v::id("id", &self.id)?;
        v::text("name", &self.name, v::MAX_NAME_BYTES)?;
        for (field, value) in [
            ("wave", &self.wave),
            ("gender", &self.gender),
            ("category", &self.category),
        ] {
            if let Some(value) = value {
                v::id(field, value)?;
            }
        }
        Ok(())
    }
}

/// A participant entered in a race (topic `pace.entrants`, keyed by
/// `race/participant`; a later record replaces an earlier one): what a
/// definition's `participants` list says of one participant, for races
/// too big to list them in their definition (a marathon's 30,000 runners).
/// An entrant record overrides the definition's listing of the same
/// participant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entrant {
    /// Race id.
    pub race: String,
    /// Participant id.
    pub participant: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Their wave, as in [`RaceRules::waves`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wave: Option<String>,
    /// Their gender, as in [`Participant::gender`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    /// Their category, as in [`Participant::category`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

impl Entrant {
    /// The listing this record gives its participant.
    pub fn listing(&self) -> Participant {
        Participant {
            id: self.participant.clone(),
            name: self.name.clone(),
            wave: self.wave.clone(),
            gender: self.gender.clone(),
            category: self.category.clone(),
        }
    }
}

impl Validate for Entrant {
    fn validate(&self) -> Result<(), ValidationError> {
        v::id("race", &self.race)?;
        v::id("participant", &self.participant)?;
        let mut listing = self.listing();
        // Checked above, under its own name.
        listing.id = "-".into();
        listing.validate()
    }
}

/// A race (topic `pace.races`, keyed by id; a later definition replaces an earlier one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaceDefinition {
    /// Race id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The gun.
    pub start: Timestamp,
    /// Course, marks or timing lines.
    pub kind: RaceKind,
    /// Laps to race (1 for point to point).
    #[serde(default = "one")]
    pub laps: u32,
    /// After this, no new lap may start; participants may finish the lap in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutoff: Option<Timestamp>,
    /// Known participants, with display names (optional).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub participants: Vec<Participant>,
    /// How points and crossings are judged (defaults suit most races).
    #[serde(default)]
    pub rules: RaceRules,
}

fn one() -> u32 {
    1
}

/// How a race's points and crossings are judged.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaceRules {
    /// The plausible top speed, m/s: a point that would need more from the
    /// previous accepted point is rejected as a jump. Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_speed_mps: Option<f64>,
    /// The shortest possible lap, seconds: a crossing sooner than this after
    /// the previous accepted crossing of the same line is a false read. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_lap_s: Option<f64>,
    /// How far short of the finish a participant may stop and count as
    /// finished, metres: in mark races line ends are target positions, which
    /// real marks miss by some metres; on a course, GPS watches stop on the
    /// line with a few metres of noise. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_tolerance_m: Option<f64>,
    /// A participant not seen for this long, seconds, while others still are,
    /// is retired. Default 600 (7200 in a chip-timed race, whose runners
    /// are seen only at its mats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire_after_s: Option<f64>,
    /// How late a point may arrive, seconds: a GPS fix (or a crossing) more
    /// than this older than the participant's latest fix (or crossing) read
    /// before it is too late: it goes to the dead letters with reason
    /// `too_late` and is not judged. What lies before the horizon is kept
    /// only as a folded state, which bounds what a participant holds.
    /// Default 120.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_lateness_s: Option<f64>,
    /// Chip-timed races: which time ranks (default net).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<Clock>,
    /// Chip-timed races: the waves, each with its start after the gun.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waves: Vec<Wave>,
}

impl RaceRules {
    /// [`Self::max_speed_mps`] or its default.
    pub fn max_speed_mps(&self) -> f64 {
        self.max_speed_mps.unwrap_or(100.0)
    }
    /// [`Self::min_lap_s`] or its default, ms.
    pub fn min_lap_ms(&self) -> i64 {
        (self.min_lap_s.unwrap_or(0.0) * 1000.0).round() as i64
    }
    /// [`Self::line_tolerance_m`] or its default.
    pub fn line_tolerance_m(&self) -> f64 {
        self.line_tolerance_m.unwrap_or(0.0)
    }
    /// [`Self::retire_after_s`] or its default, ms.
    pub fn retire_after_ms(&self) -> i64 {
        (self.retire_after_s.unwrap_or(600.0) * 1000.0).round() as i64
    }
    /// [`Self::allowed_lateness_s`] or its default, ms.
    pub fn allowed_lateness_ms(&self) -> i64 {
        (self.allowed_lateness_s.unwrap_or(120.0) * 1000.0).round() as i64
    }
}

impl Validate for RaceRules {
    fn validate(&self) -> Result<(), ValidationError> {
        if let Some(v) = self.max_speed_mps {
            v::finite_in("max_speed_mps", v, 0.1, 1000.0)?;
        }
        if let Some(v) = self.min_lap_s {
            v::finite_in("min_lap_s", v, 0.0, 86_400.0)?;
        }
        if let Some(v) = self.line_tolerance_m {
            v::finite_in("line_tolerance_m", v, 0.0, 1000.0)?;
        }
        if let Some(v) = self.retire_after_s {
            v::finite_in("retire_after_s", v, 1.0, 7.0 * 86_400.0)?;
        }
        if let Some(v) = self.allowed_lateness_s {
            v::finite_in("allowed_lateness_s", v, 0.0, 7.0 * 86_400.0)?;
        }
        v::bounded_len("waves", &self.waves, 1000)?;
        v::each("waves", &self.waves)
    }
}

impl Validate for RaceDefinition {
    const MAX_PAYLOAD_BYTES: usize = crate::wire::MAX_DEFINITION_BYTES;

    fn validate(&self) -> Result<(), ValidationError> {
        v::id("id", &self.id)?;
        v::text("name", &self.name, v::MAX_NAME_BYTES)?;
        v::time("start", self.start)?;
        self.kind.validate().map_err(|e| e.within("kind"))?;
        if !(1..=100_000).contains(&self.laps) {
            return Err(ValidationError::new("laps", "must be 1..=100000"));
        }
        if let Some(cutoff) = self.cutoff {
            v::time("cutoff", cutoff)?;
            if cutoff <= self.start {
                return Err(ValidationError::new("cutoff", "must be after start"));
            }
        }
        v::bounded_len("participants", &self.participants, v::MAX_PARTICIPANTS)?;
        v::each("participants", &self.participants)?;
        self.rules.validate().map_err(|e| e.within("rules"))?;
        for (i, p) in self.participants.iter().enumerate() {
            if let Some(w) = &p.wave
                && !self.rules.waves.iter().any(|x| &x.id == w)
            {
                return Err(ValidationError::new(
                    format!("participants[{i}].wave"),
                    "no such wave in rules.waves",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mats(json: &str) -> Result<(), ValidationError> {
        let kind: RaceKind = serde_json::from_str(json).expect("parses");
        kind.validate()
    }

    #[test]
    fn a_chip_timed_race_may_have_a_route_of_two_points_or_more() {
        let start = r#"{"id":"start","distance_m":0}"#;
        let finish = r#"{"id":"finish","distance_m":5000}"#;
        let route = r#"[{"lat":59.3,"lon":18.0},{"lat":59.3,"lon":18.1}]"#;
        mats(&format!(r#"{{"type":"mats","mats":[{start},{finish}]}}"#)).unwrap();
        mats(&format!(
            r#"{{"type":"mats","mats":[{start},{finish}],"course":{route}}}"#
        ))
        .unwrap();
        let one = r#"[{"lat":59.3,"lon":18.0}]"#;
        let err = mats(&format!(
            r#"{{"type":"mats","mats":[{start},{finish}],"course":{one}}}"#
        ))
        .unwrap_err();
        assert!(err.to_string().contains("course"), "{err}");
        let far = r#"[{"lat":59.3,"lon":18.0},{"lat":95.0,"lon":18.1}]"#;
        assert!(
            mats(&format!(
                r#"{{"type":"mats","mats":[{start},{finish}],"course":{far}}}"#
            ))
            .is_err()
        );
        let back = r#"{"id":"back","distance_m":-1}"#;
        assert!(mats(&format!(r#"{{"type":"mats","mats":[{start},{back}]}}"#)).is_err());
    }
}
