//! `pace archive verify`: the archive checked against the topics, offset by offset.
//!
//! For each archived topic and partition, every record from the start of
//! retention up to the end is read and turned into the rows it should give
//! (the archiver's own decoding: a refused input record gives none, a
//! changelog record one per row). Those counts are compared with the rows the
//! archive's files hold for each offset:
//!
//! - **missing**: fewer rows than the record gives (a gap);
//! - **duplicated**: more rows than it gives;
//! - **misplaced**: a row outside its file's offset range, or past the end of
//!   the topic;
//! - **pending**: records past what the dataset's files cover yet (the
//!   archiver writes them within `max_age`); not an error;
//! - **expired**: rows of records the topic no longer holds (retention); not
//!   checked.
//!
//! Memory: four bytes per offset of the partition being checked.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use ingest::KafkaConfig;
use ingest::reader::{Reader, Start};

use crate::SinkError;
use crate::archive::{root, topics};
use crate::parquet::{ArchivedFile, list_files, read_offsets};

/// What `verify` found for one dataset and partition.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Checked {
    /// The topic.
    pub topic: String,
    /// The dataset.
    pub dataset: String,
    /// The partition.
    pub partition: i32,
    /// First offset the topic holds.
    pub low: i64,
    /// Next offset the topic will write.
    pub high: i64,
    /// Last offset the dataset's files cover.
    pub through: Option<i64>,
    /// Files of this dataset and partition.
    pub files: usize,
    /// Rows the records up to `through` give.
    pub expected: u64,
    /// Rows the files hold for them.
    pub archived: u64,
    /// Rows missing.
    pub missing: u64,
    /// Rows held more than once.
    pub duplicated: u64,
    /// Rows outside their file's range or past the topic's end.
    pub misplaced: u64,
    /// Rows of records past `through`, not archived yet.
    pub pending: u64,
    /// Rows of records the topic no longer holds.
    pub expired: u64,
    /// The first offset ranges with missing rows.
    pub missing_ranges: Vec<(i64, i64)>,
    /// The first offsets with duplicated rows.
    pub duplicated_offsets: Vec<i64>,
}

impl Checked {
    /// No gap, duplicate or misplaced row.
    pub fn ok(&self) -> bool {
        self.missing == 0 && self.duplicated == 0 && self.misplaced == 0
    }
}

/// What `verify` found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Report {
    /// One entry per dataset and partition.
    pub checked: Vec<Checked>,
}

impl Report {
    /// No gap, duplicate or misplaced row anywhere.
    pub fn ok(&self) -> bool {
        self.checked.iter().all(Checked::ok)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<18} {:>4} {:>21} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8}  verdict",
            "dataset",
            "part",
            "offsets",
            "expected",
            "archived",
            "missing",
            "dup",
            "pending",
            "files"
        )?;
        for c in &self.checked {
            let verdict = if c.ok() {
                "ok".to_owned()
            } else {
                let mut v = Vec::new();
                if c.missing > 0 {
                    v.push(format!("GAPS at {:?}", c.missing_ranges));
                }
                if c.duplicated > 0 {
                    v.push(format!("DUPLICATES at {:?}", c.duplicated_offsets));
                }
                if c.misplaced > 0 {
                    v.push(format!("{} MISPLACED rows", c.misplaced));
                }
                v.join("; ")
            };
            writeln!(
                f,
                "{:<18} {:>4} {:>21} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8}  {verdict}",
                c.dataset,
                c.partition,
                format!("{}..{}", c.low, c.high),
                c.expected,
                c.archived,
                c.missing,
                c.duplicated,
                c.pending,
                c.files,
            )?;
        }
        let bad = self.checked.iter().filter(|c| !c.ok()).count();
        if bad == 0 {
            write!(
                f,
                "every record the topics hold is archived exactly once (or pending)"
            )
        } else {
            write!(f, "{bad} dataset partitions have gaps or duplicates")
        }
    }
}

/// How long verify waits for a topic to deliver up to its end.
const READ_STALL: Duration = Duration::from_secs(30);
/// Offsets listed in a report, at most.
const LISTED: usize = 10;

/// Checks the archive under `data_dir` against the topics of `kafka`.
pub fn verify(kafka: &KafkaConfig, data_dir: &Path) -> Result<Report, SinkError> {
    let archive = root(data_dir);
    let mut report = Report::default();
    let mut reader = Reader::new(kafka, "pace-archive-verify", &[])?;
    for mut topic in topics(&kafka.topics, None)? {
        let name = topic.name().to_owned();
        let datasets: Vec<(&str, Vec<ArchivedFile>)> = topic
            .datasets()
            .into_iter()
            .map(|d| list_files(&archive.join(d)).map(|files| (d, files)))
            .collect::<Result<_, _>>()?;
        for p in 0..reader.partitions(&name)? {
            // One partition at a time: memory is that partition's offsets.
            reader.assign(&[(name.clone(), p, Start::At(0))])?;
            let (low, high) = reader.watermarks(&name, p)?;
            let len = usize::try_from(high - low).unwrap_or(0);
            // Rows each record gives, per dataset.
            let mut expected = vec![vec![0u32; len]; datasets.len()];
            let mut next = low;
            let mut progress = Instant::now();
            while next < high {
                let batch = reader.poll(4096, Duration::from_millis(200));
                if batch.is_empty() && progress.elapsed() > READ_STALL {
                    return Err(SinkError::Stalled {
                        topic: name.clone(),
                        partition: p,
                        at: next,
                        end: high,
                    });
                }
                for (_, raw) in batch {
                    if raw.partition != p || raw.offset < low || raw.offset >= high {
                        continue;
                    }
                    progress = Instant::now();
                    next = raw.offset + 1;
                    for (d, n) in topic.count(&raw).into_iter().enumerate() {
                        expected[d][(raw.offset - low) as usize] = n as u32;
                    }
                }
            }
            for (d, (dataset, files)) in datasets.iter().enumerate() {
                let files = files.iter().filter(|f| f.name.partition == p);
                report
                    .checked
                    .push(check(files, &name, dataset, p, (low, high), &expected[d])?);
            }
        }
    }
    Ok(report)
}

/// Compares the files of one dataset and partition with `expected`.
fn check<'a>(
    files: impl Iterator<Item = &'a ArchivedFile>,
    topic: &str,
    dataset: &str,
    partition: i32,
    (low, high): (i64, i64),
    expected: &[u32],
) -> Result<Checked, SinkError> {
    let mut c = Checked {
        topic: topic.to_owned(),
        dataset: dataset.to_owned(),
        partition,
        low,
        high,
        ..Checked::default()
    };
    let mut actual = vec![0u32; expected.len()];
    for f in files {
        c.files += 1;
        c.through = c.through.max(Some(f.name.last));
        for o in read_offsets(&f.path)? {
            if o < f.name.first || o > f.name.last || o >= high {
                c.misplaced += 1;
            } else if o < low {
                c.expired += 1;
            } else {
                actual[(o - low) as usize] += 1;
            }
        }
    }
    let through = c.through.unwrap_or(low - 1);
    let mut gaps: BTreeMap<i64, i64> = BTreeMap::new();
    let mut last_gap: Option<(i64, i64)> = None;
    for (i, (&want, &have)) in expected.iter().zip(&actual).enumerate() {
        let o = low + i as i64;
        if o > through {
            c.pending += u64::from(want);
            c.misplaced += u64::from(have);
            continue;
        }
        c.expected += u64::from(want);
        c.archived += u64::from(have);
        if have < want {
            c.missing += u64::from(want - have);
            last_gap = match last_gap {
                Some((s, e)) if e + 1 == o => Some((s, o)),
                Some(g) => {
                    gaps.insert(g.0, g.1);
                    Some((o, o))
                }
                None => Some((o, o)),
            };
        } else if have > want {
            c.duplicated += u64::from(have - want);
            if c.duplicated_offsets.len() < LISTED {
                c.duplicated_offsets.push(o);
            }
        }
    }
    if let Some(g) = last_gap {
        gaps.insert(g.0, g.1);
    }
    c.missing_ranges = gaps.into_iter().take(LISTED).collect();
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parquet::{FileName, test_file};

    #[test]
    fn gaps_duplicates_and_pending_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let write = |first: i64, last: i64, offsets: &[i64]| {
            let name = FileName {
                partition: 0,
                first,
                last,
            };
            test_file(dir.path(), "2026-05-28", name, offsets)
        };
        write(0, 4, &[0, 1, 3, 4]); // 2 is missing
        write(5, 6, &[5, 6, 6]); // 6 twice
        // The topic holds 0..10; each record gives one row; 7..9 not archived yet.
        let files = list_files(dir.path()).unwrap();
        let c = check(files.iter(), "t", "gps", 0, (0, 10), &[1; 10]).unwrap();
        assert_eq!(
            (
                c.expected,
                c.archived,
                c.missing,
                c.duplicated,
                c.pending,
                c.through
            ),
            (7, 7, 1, 1, 3, Some(6))
        );
        assert_eq!(c.missing_ranges, vec![(2, 2)]);
        assert_eq!(c.duplicated_offsets, vec![6]);
        assert!(!c.ok());
        // A refused record (no row expected) at 2 is no gap.
        let mut want = [1; 10];
        want[2] = 0;
        want[6] = 2;
        let c = check(files.iter(), "t", "gps", 0, (0, 10), &want).unwrap();
        assert!(c.ok(), "{c:?}");
        // Retention passed offset 3: rows before it are expired, not checked.
        let c = check(files.iter(), "t", "gps", 0, (3, 10), &[1, 1, 1, 2, 1, 1, 1]).unwrap();
        assert_eq!((c.expired, c.missing, c.duplicated), (2, 0, 0), "{c:?}");
    }
}
