//! Formula 1 laps (Ergast schema): each race a timing-line race, each
//! driver crossing the line at the gun and at the end of every lap.

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
                wave: None,
                ..Default::default()
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
