//! SailGP boat logs (`data_<NAT>.csv`) and race XML: each race a mark
//! race, each log row a GPS point.

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
            let (race, boat, time) = (point.race.clone(), point.participant.clone(), point.time);
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
                wave: None,
                ..Default::default()
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
