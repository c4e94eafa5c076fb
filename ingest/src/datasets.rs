//! Readers for recorded races, so they replay through Kafka like live input.
//!
//! - [`f1`]: a season of Formula 1 laps in the Ergast CSV schema
//!   (`lap_times.csv`, `races.csv`, `drivers.csv`). Each race becomes a
//!   timing-line race; each driver crosses the line at the gun (the start,
//!   not a lap) and at the end of every lap, at its cumulative time.
//! - [`irc`]: an IRC channel log (`[hh:mm] <nick> text`, `=== nick … has
//!   joined/left`, nick changes, emotes) as the events of one room.
//! - [`sailgp`]: SailGP boat logs (`data_<NAT>.csv`, about 1 Hz) and race
//!   XML (start time, marks and gates). Each race becomes a mark race; each
//!   log row a GPS point of the race the row is labelled with.
//!
//! [`replay`] produces a [`Dataset`] in time order: definitions first, then
//! GPS points and crossings merged by time.
//!
//! A line or row that cannot be read (a message with no text, a number that
//! is not one, a point out of range) is skipped and kept in
//! [`Dataset::skipped`] with its file and line number; the rest of the file
//! is read. Only what makes a whole file unreadable (it cannot be opened, a
//! CSV has no header, an XML does not parse, an IRC log's name has no
//! date) fails the read.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use schemas::{GpsPoint, RaceDefinition, Timestamp, TimingCrossing};

use crate::producer::TrackedProducer;
use crate::{IngestError, KafkaConfig, jsonl::InputRecord};

/// A recorded race day: definitions, GPS points and timing crossings.
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    /// Race definitions.
    pub definitions: Vec<RaceDefinition>,
    /// GPS points, in time order.
    pub gps: Vec<GpsPoint>,
    /// Timing crossings, in time order.
    pub timing: Vec<TimingCrossing>,
    /// Chat events, in order.
    pub chat: Vec<schemas::ChatEvent>,
    /// Lines the readers skipped, in the order they met them.
    pub skipped: Vec<Skipped>,
}

/// A line a reader skipped: where, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The file.
    pub path: String,
    /// 1-based line number.
    pub line: usize,
    /// Why it was skipped.
    pub reason: String,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.path, self.line, self.reason)
    }
}

impl Skipped {
    /// The skipped line `e` names, or `e` itself if it is about more than a
    /// line (the file cannot be read at all).
    fn from_error(e: IngestError) -> Result<Self, IngestError> {
        match e {
            IngestError::BadLine { path, line, reason } if line > 0 => {
                Ok(Skipped { path, line, reason })
            }
            other => Err(other),
        }
    }
}

/// `row`'s value, or the line it came from in `skipped`.
fn keep<T>(
    skipped: &mut Vec<Skipped>,
    row: Result<T, IngestError>,
) -> Result<Option<T>, IngestError> {
    match row {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            skipped.push(Skipped::from_error(e)?);
            Ok(None)
        }
    }
}

fn parse_time(s: &str) -> Result<Timestamp, String> {
    Timestamp::parse_rfc3339(s).ok_or_else(|| format!("{s:?} is not an RFC 3339 time"))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> IngestError + '_ {
    move |source| IngestError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn bad(path: &Path, line: usize, reason: impl std::fmt::Display) -> IngestError {
    IngestError::BadLine {
        path: path.display().to_string(),
        line,
        reason: reason.to_string(),
    }
}

/// A CSV row: its line number, and column name → value.
type Row = (usize, BTreeMap<String, String>);

/// Reads a CSV file with a header into rows; a row that does not parse is
/// skipped into `skipped`.
fn csv_rows(path: &Path, skipped: &mut Vec<Skipped>) -> Result<Vec<Row>, IngestError> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| bad(path, 0, e))?;
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| bad(path, 1, e))?
        .iter()
        .map(str::to_owned)
        .collect();
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let Some(record) = keep(skipped, record.map_err(|e| bad(path, i + 2, e)))? else {
            continue;
        };
        let row = header
            .iter()
            .cloned()
            .zip(record.iter().map(str::to_owned))
            .collect();
        out.push((i + 2, row));
    }
    Ok(out)
}

fn field<'a>(
    path: &Path,
    line: usize,
    row: &'a BTreeMap<String, String>,
    name: &str,
) -> Result<&'a str, IngestError> {
    row.get(name)
        .map(String::as_str)
        .ok_or_else(|| bad(path, line, format_args!("no column {name:?}")))
}

fn number<T: std::str::FromStr>(
    path: &Path,
    line: usize,
    row: &BTreeMap<String, String>,
    name: &str,
) -> Result<T, IngestError> {
    let v = field(path, line, row, name)?;
    v.trim()
        .parse()
        .map_err(|_| bad(path, line, format_args!("{name}: {v:?} is not a number")))
}

/// Formula 1 laps (Ergast schema).
pub mod f1 {
    use super::*;
    use schemas::{Participant, RaceKind, RaceRules, TimingLine};

    /// The timing line every lap ends on.
    pub const LINE: &str = "line";
    /// `races.csv` gives the date only: the gun is at this UTC time of day.
    pub const START_UTC: &str = "13:10:00";

    /// One row of `lap_times.csv`: the official position after a lap.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Lap {
        /// pace's race id (`f1-<raceid>`).
        pub race: String,
        /// pace's participant id (the driver's code).
        pub driver: String,
        /// Lap number, from 1.
        pub lap: u32,
        /// Position after the lap.
        pub position: u32,
    }

    /// Reads `dir` into a dataset, and the laps with their official positions.
    pub fn read(dir: &Path) -> Result<(Dataset, Vec<Lap>), IngestError> {
        let races_path = dir.join("races.csv");
        let drivers_path = dir.join("drivers.csv");
        let laps_path = dir.join("lap_times.csv");
        let mut skipped = Vec::new();
        let mut drivers: BTreeMap<String, (String, String)> = BTreeMap::new();
        for (line, row) in csv_rows(&drivers_path, &mut skipped)? {
            let driver = (|| {
                let id = field(&drivers_path, line, &row, "driverid")?.to_owned();
                let code = match field(&drivers_path, line, &row, "code")? {
                    "\\N" | "" => format!("D{id}"),
                    c => c.to_owned(),
                };
                let name = format!(
                    "{} {}",
                    field(&drivers_path, line, &row, "forename")?,
                    field(&drivers_path, line, &row, "surname")?
                );
                Ok((id, (code, name)))
            })();
            if let Some((id, driver)) = keep(&mut skipped, driver)? {
                drivers.insert(id, driver);
            }
        }
        // raceid -> driverid -> [(lap, ms, position)]
        type Laps = BTreeMap<String, BTreeMap<String, Vec<(u32, i64, u32)>>>;
        let mut laps: Laps = BTreeMap::new();
        for (line, row) in csv_rows(&laps_path, &mut skipped)? {
            let lap = (|| {
                let race = field(&laps_path, line, &row, "raceid")?.to_owned();
                let driver = field(&laps_path, line, &row, "driverid")?.to_owned();
                let lap: u32 = number(&laps_path, line, &row, "lap")?;
                let ms: i64 = number(&laps_path, line, &row, "milliseconds")?;
                let position: u32 = number(&laps_path, line, &row, "position")?;
                if !drivers.contains_key(&driver) {
                    return Err(bad(
                        &laps_path,
                        line,
                        format_args!("unknown driver {driver}"),
                    ));
                }
                Ok((race, driver, (lap, ms, position)))
            })();
            if let Some((race, driver, lap)) = keep(&mut skipped, lap)? {
                laps.entry(race)
                    .or_default()
                    .entry(driver)
                    .or_default()
                    .push(lap);
            }
        }
        let mut out = Dataset::default();
        let mut official = Vec::new();
        for (line, row) in csv_rows(&races_path, &mut skipped)? {
            let race = (|| {
                let raceid = field(&races_path, line, &row, "raceid")?;
                let date = field(&races_path, line, &row, "date")?;
                let start = parse_time(&format!("{date}T{START_UTC}Z"))
                    .map_err(|e| bad(&races_path, line, e))?;
                let name = format!(
                    "{} {}",
                    field(&races_path, line, &row, "name")?,
                    field(&races_path, line, &row, "year")?
                );
                Ok((raceid, start, name))
            })();
            let Some((raceid, start, name)) = keep(&mut skipped, race)? else {
                continue;
            };
            let Some(race_laps) = laps.get(raceid) else {
                continue;
            };
            let id = format!("f1-{raceid}");
            let mut winner: Option<(u32, i64)> = None;
            let mut participants = Vec::new();
            for (driver, list) in race_laps {
                let (code, name) = &drivers[driver];
                participants.push(Participant {
                    id: code.clone(),
                    name: name.clone(),
                });
                let mut list = list.clone();
                list.sort();
                out.timing.push(crossing(&id, code, start.0));
                let mut cumulative = start.0;
                for (lap, ms, position) in list {
                    cumulative += ms;
                    out.timing.push(crossing(&id, code, cumulative));
                    official.push(Lap {
                        race: id.clone(),
                        driver: code.clone(),
                        lap,
                        position,
                    });
                    // The winner: most laps, then the earliest.
                    if winner.is_none_or(|(l, t)| lap > l || (lap == l && cumulative < t)) {
                        winner = Some((lap, cumulative));
                    }
                }
            }
            let (laps, flag) = winner.unwrap_or((1, start.0 + 1));
            out.definitions.push(RaceDefinition {
                id,
                name,
                start,
                kind: RaceKind::TimingLines {
                    lines: vec![TimingLine {
                        id: LINE.into(),
                        name: "Start/finish".into(),
                        ends: None,
                    }],
                },
                laps,
                // The chequered flag: once the winner is in, the others
                // finish at their next crossing.
                cutoff: Some(Timestamp(flag)),
                participants,
                rules: RaceRules {
                    min_lap_s: Some(30.0),
                    ..Default::default()
                },
            });
        }
        out.timing.sort_by_key(|c| c.time);
        out.skipped = skipped;
        Ok((out, official))
    }

    fn crossing(race: &str, driver: &str, t: i64) -> TimingCrossing {
        TimingCrossing {
            race: race.into(),
            participant: driver.into(),
            line: LINE.into(),
            time: Timestamp(t),
        }
    }
}

/// An IRC channel log as one room's chat events.
pub mod irc {
    use super::*;
    use schemas::{ChatEvent, ChatKind, Validate};

    /// Reads the log at `path` as the events of `room`, in log order, into
    /// [`Dataset::chat`]; a line that is none of these is skipped into
    /// [`Dataset::skipped`].
    ///
    /// `[hh:mm] <nick> text` is a message; `=== nick [host] has joined` a
    /// join; `has left` and `has quit` a leave; `=== old is now known as new`
    /// the old nick leaving and the new one joining; `=== mode/…` nothing;
    /// any other `===` line an emote, a message `* nick …`. The date comes
    /// from the file name (`…_2005-07-06_…`); a line carries the time of the
    /// latest `[hh:mm]`, a day later each time the clock goes back.
    pub fn read(path: &Path, room: &str) -> Result<Dataset, IngestError> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let day0 = (0..name.len().saturating_sub(9))
            .filter_map(|i| name.get(i..i + 10))
            .find_map(|d| parse_time(&format!("{d}T00:00:00Z")).ok())
            .ok_or_else(|| bad(path, 0, "the file name holds no date (YYYY-MM-DD)"))?;
        let text = std::fs::read_to_string(path).map_err(io(path))?;
        let mut clock = (0i64, 0i64);
        let mut out = Dataset::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            let events = events(path, i + 1, line, room, day0, &mut clock);
            if let Some(events) = keep(&mut out.skipped, events)? {
                out.chat.extend(events);
            }
        }
        Ok(out)
    }

    /// The events of line `n`; `clock` is the (day, minute) of the latest
    /// `[hh:mm]`, which a line with a good clock moves even if the rest of
    /// it is bad.
    fn events(
        path: &Path,
        n: usize,
        line: &str,
        room: &str,
        day0: Timestamp,
        clock: &mut (i64, i64),
    ) -> Result<Vec<ChatEvent>, IngestError> {
        let time = |(day, minute): (i64, i64)| Timestamp(day0.0 + (day * 1440 + minute) * 60_000);
        let event = |user: &str, kind: ChatKind, text: Option<String>, t: Timestamp| ChatEvent {
            room: room.to_owned(),
            // The logger pads some nicks with a space; nicks have none.
            user: user.trim().to_owned(),
            kind,
            text,
            client_msg_id: None,
            visibility: None,
            invitee: None,
            time: t,
        };
        let mut events = Vec::new();
        if let Some(rest) = line.strip_prefix('[') {
            let (at, rest) = rest
                .split_once("] ")
                .or_else(|| rest.strip_suffix(']').map(|at| (at, "")))
                .ok_or_else(|| bad(path, n, "expected [hh:mm]"))?;
            let (h, m) = at
                .split_once(':')
                .and_then(|(h, m)| Some((h.parse::<i64>().ok()?, m.parse::<i64>().ok()?)))
                .filter(|(h, m)| (0..24).contains(h) && (0..60).contains(m))
                .ok_or_else(|| bad(path, n, format_args!("{at:?} is not hh:mm")))?;
            if h * 60 + m < clock.1 {
                clock.0 += 1;
            }
            clock.1 = h * 60 + m;
            let (nick, said) = rest
                .strip_prefix('<')
                .and_then(|r| r.split_once("> "))
                .ok_or_else(|| bad(path, n, "expected <nick> text"))?;
            events.push(event(
                nick.trim(),
                ChatKind::Message,
                Some(said.to_owned()),
                time(*clock),
            ));
        } else if let Some(rest) = line.strip_prefix("=== ") {
            let t = time(*clock);
            if let Some((old, new)) = rest.split_once(" is now known as ") {
                events.push(event(old, ChatKind::Leave, None, t));
                events.push(event(new.trim(), ChatKind::Join, None, t));
            } else if rest.starts_with("mode/") {
            } else if let Some(at) = ["]  has joined #", "]  has left #", "]  has quit"]
                .iter()
                .find_map(|w| rest.find(w))
            {
                // `nick [user@host]  has …`: the host is the last bracket before.
                let host = rest[..at].rfind('[').unwrap_or(at);
                let nick = rest[..host].trim();
                let kind = if rest[at..].contains("has joined") {
                    ChatKind::Join
                } else {
                    ChatKind::Leave
                };
                events.push(event(nick, kind, None, t));
            } else {
                let nick = rest.split(' ').next().unwrap_or_default();
                events.push(event(nick, ChatKind::Message, Some(format!("* {rest}")), t));
            }
        } else {
            return Err(bad(path, n, "neither [hh:mm] nor ==="));
        }
        for e in &events {
            e.validate().map_err(|err| bad(path, n, err))?;
        }
        Ok(events)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn bad_lines_are_skipped_counted_and_named() {
            let dir = tempfile_dir();
            let path = dir.join("chat_2005-07-06_14.raw.txt");
            std::fs::write(
                &path,
                "[12:14] <ann> hello\n\
                 [12:15] <bob>\n\
                 [12:15] <bob> \n\
                 garbage\n\
                 [99:99] <ann> late\n\
                 [12:16 <ann> no bracket\n\
                 === carl [~c@host]  has joined #ubuntu\n\
                 [12:17] <ann> bye\n",
            )
            .unwrap();
            let d = read(&path, "irc").unwrap();
            let said: Vec<_> = d.chat.iter().map(|e| (e.user.as_str(), e.kind)).collect();
            assert_eq!(
                said,
                [
                    ("ann", ChatKind::Message),
                    ("carl", ChatKind::Join),
                    ("ann", ChatKind::Message)
                ]
            );
            let lines: Vec<usize> = d.skipped.iter().map(|s| s.line).collect();
            assert_eq!(lines, [2, 3, 4, 5, 6]);
            assert!(
                d.skipped[0]
                    .to_string()
                    .ends_with(":2: expected <nick> text"),
                "{}",
                d.skipped[0]
            );
            assert!(d.skipped[1].reason.contains("text"), "{}", d.skipped[1]);
            // The clock of a skipped line still counts: carl joined at 12:15.
            assert_eq!(d.chat[1].time.0 - d.chat[0].time.0, 60_000);
            std::fs::remove_dir_all(&dir).unwrap();
        }

        fn tempfile_dir() -> std::path::PathBuf {
            let dir = std::env::temp_dir().join(format!(
                "pace-irc-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            dir
        }
    }
}

/// SailGP boat logs and race XML.
pub mod sailgp {
    use super::*;
    use schemas::{LatLon, Mark, Participant, RaceKind, RaceRules};

    /// How far short of the finish line's target position a boat counts as
    /// finished: the logs end as boats finish, up to about 17 m short of the
    /// target line (the real marks sit some metres off their targets).
    pub const LINE_TOLERANCE_M: f64 = 25.0;

    /// One race XML: id, gun, when it was written, and its course.
    struct RaceXml {
        id: String,
        start: Timestamp,
        created: Timestamp,
        start_line: [LatLon; 2],
        marks: Vec<Mark>,
        finish: [LatLon; 2],
    }

    fn read_xml(path: &Path) -> Result<RaceXml, IngestError> {
        let text = std::fs::read_to_string(path).map_err(io(path))?;
        let doc = roxmltree::Document::parse(&text).map_err(|e| bad(path, 0, e))?;
        let root = doc.root_element();
        let child = |name: &str| {
            root.children()
                .find(|n| n.has_tag_name(name))
                .ok_or_else(|| bad(path, 0, format_args!("no <{name}>")))
        };
        let text_of = |name: &str| -> Result<String, IngestError> {
            Ok(child(name)?.text().unwrap_or_default().trim().to_owned())
        };
        let time = |s: &str| parse_time(s).map_err(|e| bad(path, 0, e));
        let start = time(
            child("RaceStartTime")?
                .attribute("Start")
                .ok_or_else(|| bad(path, 0, "RaceStartTime has no Start"))?,
        )?;
        let created = time(&text_of("CreationTimeDate")?)?;
        let mut compound: BTreeMap<String, Mark> = BTreeMap::new();
        for cm in child("Course")?
            .children()
            .filter(|n| n.has_tag_name("CompoundMark"))
        {
            let id = cm
                .attribute("CompoundMarkID")
                .unwrap_or_default()
                .to_owned();
            let mut points = Vec::new();
            for m in cm.children().filter(|n| n.has_tag_name("Mark")) {
                let coord = |a: &str| -> Result<f64, IngestError> {
                    m.attribute(a)
                        .and_then(|v| v.parse().ok())
                        .ok_or_else(|| bad(path, 0, format_args!("mark without {a}")))
                };
                points.push(LatLon {
                    lat: coord("TargetLat")?,
                    lon: coord("TargetLng")?,
                });
            }
            let name = cm.attribute("Name").unwrap_or_default().to_owned();
            compound.insert(id, Mark { name, points });
        }
        let mut sequence = Vec::new();
        for corner in child("CompoundMarkSequence")?
            .children()
            .filter(|n| n.has_tag_name("Corner"))
        {
            let id = corner.attribute("CompoundMarkID").unwrap_or_default();
            let mark = compound
                .get(id)
                .ok_or_else(|| bad(path, 0, format_args!("corner names unknown mark {id}")))?;
            sequence.push(mark.clone());
        }
        let line = |m: Option<&Mark>, what: &str| -> Result<[LatLon; 2], IngestError> {
            match m.map(|m| m.points.as_slice()) {
                Some([a, b]) => Ok([*a, *b]),
                _ => Err(bad(
                    path,
                    0,
                    format_args!("the {what} is not a two-mark line"),
                )),
            }
        };
        let start_line = line(sequence.first(), "start")?;
        let finish = line(sequence.last(), "finish")?;
        let marks = sequence[1..sequence.len() - 1].to_vec();
        Ok(RaceXml {
            id: text_of("RaceID")?,
            start,
            created,
            start_line,
            marks,
            finish,
        })
    }

    /// The tracking system's leg changes: per (race, boat), (leg, time) for
    /// every change of `TRK_LEG_NUM_unk`. pace does not read them; they are
    /// what tests compare pace's leg times with.
    pub type LegChanges = BTreeMap<(String, String), Vec<(u32, Timestamp)>>;

    /// Reads `dir` (race XMLs and `data_*.csv`) into a dataset, and the
    /// tracking system's leg changes.
    ///
    /// A race's gun and id come from its XML. Its course is the one in force
    /// during the race: of all the XMLs, the newest written before the race's
    /// last logged point. (Race XMLs are snapshots of the course taken during
    /// the day; the final's, 25011908, was written after the final had ended,
    /// when the marks had been re-laid 700 m away for another wind.)
    pub fn read(dir: &Path) -> Result<(Dataset, LegChanges), IngestError> {
        let mut xmls = Vec::new();
        let mut logs = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(".xml") {
                xmls.push(read_xml(&path)?);
            } else if name.starts_with("data_") && name.ends_with(".csv") {
                logs.push(path);
            }
        }
        xmls.sort_by_key(|x| x.created);
        logs.sort();
        let mut out = Dataset::default();
        let mut legs: LegChanges = BTreeMap::new();
        // race -> boats, last point
        let mut boats: BTreeMap<String, (Vec<String>, Timestamp)> = BTreeMap::new();
        for path in &logs {
            let mut previous: Option<(String, u32)> = None;
            for (line, row) in csv_rows(path, &mut out.skipped)? {
                let point = (|| {
                    let leg = number::<f64>(path, line, &row, "TRK_LEG_NUM_unk")? as u32;
                    let time = parse_time(&format!(
                        "{}Z",
                        field(path, line, &row, "DATETIME")?.replace(' ', "T")
                    ))
                    .map_err(|e| bad(path, line, e))?;
                    let point = GpsPoint {
                        race: format!(
                            "{}",
                            number::<f64>(path, line, &row, "TRK_RACE_NUM_unk")? as i64
                        ),
                        participant: field(path, line, &row, "BOAT")?.to_owned(),
                        time,
                        lat: number(path, line, &row, "LATITUDE_GPS_unk")?,
                        lon: number(path, line, &row, "LONGITUDE_GPS_unk")?,
                        elevation: None,
                        accuracy: None,
                    };
                    schemas::Validate::validate(&point).map_err(|e| bad(path, line, e))?;
                    Ok((point, leg))
                })();
                let Some((point, leg)) = keep(&mut out.skipped, point)? else {
                    continue;
                };
                let (race, boat, time) =
                    (point.race.clone(), point.participant.clone(), point.time);
                out.gps.push(point);
                let entry = boats.entry(race.clone()).or_insert((Vec::new(), time));
                if !entry.0.contains(&boat) {
                    entry.0.push(boat.clone());
                }
                entry.1 = entry.1.max(time);
                if previous
                    .as_ref()
                    .is_some_and(|(r, l)| *r == race && *l != leg)
                {
                    legs.entry((race.clone(), boat.clone()))
                        .or_default()
                        .push((leg, time));
                }
                previous = Some((race, leg));
            }
        }
        for x in &xmls {
            let Some((names, last)) = boats.get(&x.id) else {
                continue;
            };
            let course = xmls.iter().rev().find(|c| c.created <= *last).unwrap_or(x);
            let mut participants: Vec<Participant> = names
                .iter()
                .map(|b| Participant {
                    id: b.clone(),
                    name: b.clone(),
                })
                .collect();
            participants.sort_by(|a, b| a.id.cmp(&b.id));
            out.definitions.push(RaceDefinition {
                id: x.id.clone(),
                name: format!("SailGP Auckland race {}", x.id),
                start: x.start,
                kind: RaceKind::Marks {
                    start: course.start_line,
                    marks: course.marks.clone(),
                    finish: course.finish,
                },
                laps: 1,
                cutoff: None,
                participants,
                rules: RaceRules {
                    // An F50 tops out near 28 m/s.
                    max_speed_mps: Some(40.0),
                    line_tolerance_m: Some(LINE_TOLERANCE_M),
                    retire_after_s: Some(120.0),
                    ..Default::default()
                },
            });
        }
        out.definitions.sort_by(|a, b| a.id.cmp(&b.id));
        out.gps.sort_by_key(|p| p.time);
        Ok((out, legs))
    }
}

/// Produces `dataset` to its topics: the definitions, then points,
/// crossings and chat events merged by time (each kind keeps its order),
/// spaced as their times are divided by `speed` (0 = as fast as possible),
/// until done or `stop`. `sent` hears the key and time of each point,
/// crossing and chat event as it is handed to the producer. Returns how
/// many records were produced, all acknowledged by the broker.
pub fn replay(
    config: &KafkaConfig,
    dataset: &Dataset,
    speed: f64,
    stop: &Arc<AtomicBool>,
    sent: &mut dyn FnMut(&str, Timestamp),
) -> Result<usize, IngestError> {
    let producer = TrackedProducer::new(config)?;
    let topics = &config.topics;
    fn record<'t, R: InputRecord>(topic: &'t str, r: &R) -> (Timestamp, &'t str, String, Vec<u8>) {
        (
            r.time(),
            topic,
            r.key(),
            serde_json::to_vec(r).expect("records serialize"),
        )
    }
    let mut timed: Vec<_> = dataset.gps.iter().map(|r| record(&topics.gps, r)).collect();
    timed.extend(dataset.timing.iter().map(|r| record(&topics.timing, r)));
    timed.extend(dataset.chat.iter().map(|r| record(&topics.chat, r)));
    // Stable: each kind keeps its own order.
    timed.sort_by_key(|r| r.0);
    for d in &dataset.definitions {
        crate::jsonl::send_record(&producer, &topics.races, d)?;
    }
    let t0 = timed.first().map(|r| r.0);
    let wall0 = Instant::now();
    let mut count = dataset.definitions.len();
    for (time, topic, key, payload) in &timed {
        if let (Some(t0), true) = (t0, speed > 0.0) {
            let due = Duration::from_secs_f64((time.0 - t0.0).max(0) as f64 / 1000.0 / speed);
            // Sleep in short steps, to notice `stop`.
            while wall0.elapsed() < due && !stop.load(Ordering::Relaxed) {
                std::thread::sleep((due - wall0.elapsed()).min(Duration::from_millis(200)));
            }
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        producer.send(topic, Some(key.as_bytes()), payload, &[], 0)?;
        sent(key, *time);
        count += 1;
    }
    producer.flush(Duration::from_secs(60))?;
    Ok(count)
}
