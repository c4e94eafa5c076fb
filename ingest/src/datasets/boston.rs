//! Published marathon results in the shape of the Boston Marathon's
//! (`marathon_results_2015.csv`: one row per finisher, the net time at each
//! mat, the official time and places) as a chip-timed race: each runner
//! crosses the start mat at the gun and every mat at the gun plus their net
//! time there, as the mats would have read them. A mat that missed a runner
//! (`-`) is not read. The results give net times only, so every runner's
//! own start is the gun.

use super::*;
use schemas::{Clock, Entrant, RaceKind, RaceRules, TimingMat};

/// pace's race id.
pub const RACE: &str = "boston-2015";
/// The gun (elite men, 10:00 EDT on 20 April 2015).
pub const GUN: &str = "2015-04-20T14:00:00Z";
/// The start mat's id.
pub const START: &str = "start";
/// The finish mat's id.
pub const FINISH: &str = "finish";
/// The mats along the course: the results' column, pace's mat id, metres.
pub const MATS: [(&str, &str, f64); 9] = [
    ("5K", "5k", 5_000.0),
    ("10K", "10k", 10_000.0),
    ("15K", "15k", 15_000.0),
    ("20K", "20k", 20_000.0),
    ("Half", "half", 21_097.5),
    ("25K", "25k", 25_000.0),
    ("30K", "30k", 30_000.0),
    ("35K", "35k", 35_000.0),
    ("40K", "40k", 40_000.0),
];
/// The marathon, metres.
pub const MARATHON_M: f64 = 42_195.0;

/// A finisher as the results give them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finisher {
    /// Bib (pace's participant id).
    pub bib: String,
    /// `Last, First`.
    pub name: String,
    /// `M` or `F`.
    pub gender: String,
    /// Age on race day.
    pub age: u32,
    /// Net time at each mat of [`MATS`], ms (`None`: the mat missed them).
    pub splits: Vec<Option<i64>>,
    /// Net finish time, ms (`None`: the results give none, as for the
    /// 2015 finisher placed 2379th, whose cell holds `0.124548611`: they
    /// are read at the mats but not at the finish).
    pub official_ms: Option<i64>,
    /// Official place overall.
    pub overall: u32,
    /// Official place among their gender.
    pub gender_place: u32,
    /// Official place in their division.
    pub division_place: u32,
}

impl Finisher {
    /// Their division, as the results place them: gender and age group
    /// (18-39, then five years each, then 80+), e.g. `F40-44`.
    pub fn division(&self) -> String {
        let group = match self.age {
            ..40 => "18-39".to_owned(),
            80.. => "80+".to_owned(),
            a => format!("{}-{}", a / 5 * 5, a / 5 * 5 + 4),
        };
        format!("{}{group}", self.gender)
    }

    /// Their entry in pace: name, gender and division.
    pub fn entrant(&self) -> Entrant {
        Entrant {
            race: RACE.into(),
            participant: self.bib.clone(),
            name: self.name.clone(),
            wave: None,
            gender: Some(self.gender.clone()),
            category: Some(self.division()),
        }
    }
}

/// `h:mm:ss` as ms; `None` for `-` or anything else.
fn hms(s: &str) -> Option<i64> {
    let mut parts = s.trim().split(':');
    let (h, m, sec) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (h, m, sec): (i64, i64, i64) = (h.parse().ok()?, m.parse().ok()?, sec.parse().ok()?);
    (m < 60 && sec < 60 && h >= 0).then_some(((h * 60 + m) * 60 + sec) * 1000)
}

/// The race definition: the start mat, [`MATS`], the finish; net time.
pub fn definition(gun: Timestamp) -> RaceDefinition {
    let mat = |id: &str, name: &str, distance_m: f64| TimingMat {
        id: id.into(),
        name: name.into(),
        distance_m,
        cutoff_s: None,
    };
    let mut mats = vec![mat(START, "Start", 0.0)];
    mats.extend(MATS.iter().map(|(name, id, d)| mat(id, name, *d)));
    mats.push(mat(FINISH, "Finish", MARATHON_M));
    RaceDefinition {
        id: RACE.into(),
        name: "Boston Marathon 2015".into(),
        start: gun,
        kind: RaceKind::Mats { mats, course: None },
        laps: 1,
        cutoff: None,
        participants: vec![],
        rules: RaceRules {
            clock: Some(Clock::Net),
            ..Default::default()
        },
    }
}

/// Reads `path` into a dataset (the race, its entrants, and every mat read
/// in time order), and the finishers as the results give them.
pub fn read(path: &Path) -> Result<(Dataset, Vec<Finisher>), IngestError> {
    let mut skipped = Vec::new();
    let gun = parse_time(GUN).expect("the gun is a valid time");
    let mut finishers = Vec::new();
    for (line, row) in csv_rows(path, &mut skipped)? {
        let finisher = (|| {
            let bib = field(path, line, &row, "Bib")?.trim().to_owned();
            schemas::validate::id("bib", &bib).map_err(|e| bad(path, line, e))?;
            let official_ms = hms(field(path, line, &row, "Official Time")?);
            let splits = MATS
                .iter()
                .map(|(column, _, _)| Ok(hms(field(path, line, &row, column)?)))
                .collect::<Result<_, IngestError>>()?;
            Ok(Finisher {
                bib,
                name: field(path, line, &row, "Name")?.to_owned(),
                gender: field(path, line, &row, "M/F")?.to_owned(),
                age: number(path, line, &row, "Age")?,
                splits,
                official_ms,
                overall: number(path, line, &row, "Overall")?,
                gender_place: number(path, line, &row, "Gender")?,
                division_place: number(path, line, &row, "Division")?,
            })
        })();
        if let Some(f) = keep(&mut skipped, finisher)? {
            finishers.push(f);
        }
    }
    let cross = |bib: &str, mat: &str, net_ms: i64| TimingCrossing {
        race: RACE.into(),
        participant: bib.to_owned(),
        line: mat.to_owned(),
        time: Timestamp(gun.0 + net_ms),
    };
    let mut timing = Vec::with_capacity(finishers.len() * (MATS.len() + 2));
    for f in &finishers {
        timing.push(cross(&f.bib, START, 0));
        for ((_, mat, _), t) in MATS.iter().zip(&f.splits) {
            if let Some(t) = t {
                timing.push(cross(&f.bib, mat, *t));
            }
        }
        if let Some(t) = f.official_ms {
            timing.push(cross(&f.bib, FINISH, t));
        }
    }
    // In time order, as the mats would have sent them; a runner's reads in
    // course order within one second.
    timing.sort_by_key(|c| c.time);
    Ok((
        Dataset {
            definitions: vec![definition(gun)],
            entrants: finishers.iter().map(Finisher::entrant).collect(),
            timing,
            skipped,
            ..Default::default()
        },
        finishers,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_as_hours_minutes_seconds() {
        assert_eq!(hms("2:09:17"), Some(((2 * 60 + 9) * 60 + 17) * 1000));
        assert_eq!(hms("0:14:43"), Some((14 * 60 + 43) * 1000));
        for bad in [
            "-",
            "",
            "1:60:00",
            "1:00",
            "a:00:00",
            "1:00:00:00",
            "0.124548611",
        ] {
            assert_eq!(hms(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_row_becomes_mat_reads_at_the_gun_plus_net_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.csv");
        std::fs::write(
            &path,
            "Bib,Name,Age,M/F,City,State,Country,Citizen,,5K,10K,15K,20K,Half,25K,30K,35K,40K,Pace,Proj Time,Official Time,Overall,Gender,Division\n\
             3,\"Desisa, Lelisa\",25,M,Ambo,,ETH,,,0:14:43,0:29:43,0:44:57,1:00:29,1:04:02,1:16:07,1:32:00,1:47:59,2:02:39,0:04:56,-,2:09:17,1,1,1\n\
             F7,\"Rotich, Caroline\",30,F,Santa Fe,NM,KEN,,,-,0:33:15,0:50:05,1:06:55,1:10:38,1:23:48,1:41:02,1:58:11,2:15:44,0:05:25,-,2:24:55,39,1,1\n\
             9,\"Bad, Row\",30,M,X,,KEN,,,0:14:44,0:29:45,0:44:59,1:00:29,1:04:02,1:16:07,1:32:00,1:47:59,2:03:18,0:05:00,-,DNF,6,6,6\n",
        )
        .unwrap();
        let (d, finishers) = read(&path).unwrap();
        assert_eq!(finishers.len(), 3);
        assert_eq!(d.skipped.len(), 0);
        assert_eq!(finishers[2].official_ms, None, "DNF is no time");
        assert!(
            !(d.timing.iter()).any(|c| c.participant == "9" && c.line == FINISH),
            "no finish read without a time"
        );
        assert_eq!(finishers[1].splits[0], None, "F7's 5K mat missed her");
        assert_eq!(finishers[1].gender_place, 1);
        let gun = parse_time(GUN).unwrap().0;
        let reads = |bib: &str| -> Vec<(String, i64)> {
            (d.timing.iter())
                .filter(|c| c.participant == bib)
                .map(|c| (c.line.clone(), (c.time.0 - gun) / 1000))
                .collect()
        };
        let f7 = reads("F7");
        assert_eq!(f7.len(), 10, "start, 8 mats, finish: {f7:?}");
        assert_eq!(f7[0], (START.to_owned(), 0));
        assert_eq!(f7[1], ("10k".to_owned(), 33 * 60 + 15));
        assert_eq!(f7[9], (FINISH.to_owned(), (2 * 60 + 24) * 60 + 55));
        assert!(d.timing.windows(2).all(|w| w[0].time <= w[1].time));
        schemas::Validate::validate(&d.definitions[0]).unwrap();
    }
}
