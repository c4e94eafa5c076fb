//! `pace archive compact`: merges the small files of closed date partitions.
//!
//! A date partition (`date=YYYY-MM-DD`) is closed once its UTC day is over
//! (by default: days before today). In it, the files of each Kafka partition
//! are merged into one, in offset order, streaming (a batch at a time), named
//! after the whole range they covered. The new directory is built beside the
//! archive (`<data-dir>/.archive-staging`) and swapped with the old one in
//! one atomic `renameat2(RENAME_EXCHANGE)`, so a reader lists either the old
//! files or the new ones, never both and never neither. A file the archiver
//! adds meanwhile (a late record) is carried over: the swap happens under the
//! dataset's lock, which the archiver takes to add a file.
//!
//! A crash leaves at most a staging directory, which the next run removes.

use std::fs::File;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::SinkError;
use crate::archive::{dataset_lock, root};
use crate::parquet::{
    ArchivedFile, FileName, io, list_dates, list_files, parquet_error, sync_dir, write_atomically,
};

/// What to compact.
#[derive(Clone, Debug)]
pub struct CompactOptions {
    /// Only this dataset (all if `None`).
    pub dataset: Option<String>,
    /// Only date partitions before this day (closed ones).
    pub before: NaiveDate,
}

/// One date partition compacted.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Compacted {
    /// The dataset.
    pub dataset: String,
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Files before.
    pub files_before: usize,
    /// Files after.
    pub files_after: usize,
    /// Rows in the merged files.
    pub rows: u64,
}

/// Compacts the archive under `data_dir`.
pub fn compact(data_dir: &Path, options: &CompactOptions) -> Result<Vec<Compacted>, SinkError> {
    let archive = root(data_dir);
    std::fs::create_dir_all(&archive).map_err(io("create", &archive))?;
    let _one_at_a_time = crate::archive::Lock::try_take(&archive.join(".compact.lock"))?
        .ok_or_else(|| SinkError::Busy {
            path: archive.display().to_string(),
        })?;
    let staging = data_dir.join(".archive-staging");
    remove_dir(&staging)?;
    let mut done = Vec::new();
    let mut datasets: Vec<String> = match std::fs::read_dir(&archive) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io("list", &archive)(e)),
    };
    datasets.sort();
    for dataset in datasets {
        if options.dataset.as_ref().is_some_and(|d| *d != dataset) {
            continue;
        }
        let dir = archive.join(&dataset);
        for (date, live) in list_dates(&dir)? {
            let closed =
                NaiveDate::parse_from_str(&date, "%Y-%m-%d").is_ok_and(|d| d < options.before);
            if !closed {
                continue;
            }
            let work = staging.join(&dataset).join(format!("date={date}"));
            if let Some(c) = compact_date(&dir, &live, &work, &dataset, &date)? {
                done.push(c);
            }
            remove_dir(&staging)?;
        }
    }
    Ok(done)
}

/// Compacts one date directory `live` of the dataset at `dir`, building the
/// new one at `work`; `None` if nothing needed merging.
fn compact_date(
    dir: &Path,
    live: &Path,
    work: &Path,
    dataset: &str,
    date: &str,
) -> Result<Option<Compacted>, SinkError> {
    let files: Vec<ArchivedFile> = list_files(dir)?
        .into_iter()
        .filter(|f| f.date == date)
        .collect();
    let mut groups: std::collections::BTreeMap<i32, Vec<&ArchivedFile>> = Default::default();
    for f in &files {
        groups.entry(f.name.partition).or_default().push(f);
    }
    if groups.values().all(|g| g.len() < 2) {
        return Ok(None);
    }
    std::fs::create_dir_all(work).map_err(io("create", work))?;
    let mut rows = 0;
    for (partition, group) in &groups {
        if let [only] = group.as_slice() {
            link(&only.path, work)?;
            continue;
        }
        rows += merge(group, work, *partition)?;
    }
    let files_after = groups.len();
    {
        let _lock = dataset_lock(dir)?;
        // Files the archiver added since the listing come along as they are.
        let mut carried = 0;
        for f in list_files(dir)?.into_iter().filter(|f| f.date == date) {
            if !files.contains(&f) {
                link(&f.path, work)?;
                carried += 1;
            }
        }
        sync_dir(work)?;
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            work,
            rustix::fs::CWD,
            live,
            rustix::fs::RenameFlags::EXCHANGE,
        )
        .map_err(|e| io("swap", live)(e.into()))?;
        sync_dir(dir)?;
        tracing::info!(
            dataset,
            date,
            before = files.len(),
            after = files_after + carried,
            "compacted"
        );
    }
    Ok(Some(Compacted {
        dataset: dataset.to_owned(),
        date: date.to_owned(),
        files_before: files.len(),
        files_after,
        rows,
    }))
}

/// Hard-links `path` into `dir` under its own name.
fn link(path: &Path, dir: &Path) -> Result<(), SinkError> {
    let to = dir.join(path.file_name().expect("archive files have names"));
    std::fs::hard_link(path, &to).map_err(io("link", &to))
}

/// Merges `group` (one partition's files, sorted by range) into one file in
/// `dir`; the rows written.
fn merge(group: &[&ArchivedFile], dir: &Path, partition: i32) -> Result<u64, SinkError> {
    let name = FileName {
        partition,
        first: group.iter().map(|f| f.name.first).min().expect("a group"),
        last: group.iter().map(|f| f.name.last).max().expect("a group"),
    };
    let open = |f: &ArchivedFile| -> Result<_, SinkError> {
        let file = File::open(&f.path).map_err(io("open", &f.path))?;
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_error(&f.path))
    };
    // The schema, and the rows the sources hold (from their footers).
    let (mut schema, mut expected) = (None, 0);
    for f in group {
        let b = open(f)?;
        expected += b.metadata().file_metadata().num_rows();
        schema.get_or_insert_with(|| b.schema().clone());
    }
    let schema = schema.expect("a group has files");
    // One source file open at a time, a batch at a time.
    let batches = group.iter().flat_map(move |f| {
        let reader = open(f).and_then(|b| b.build().map_err(parquet_error(&f.path)));
        let path = f.path.clone();
        let (ok, err) = match reader {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(Err(e))),
        };
        ok.into_iter()
            .flatten()
            .map(move |b| b.map_err(parquet_error(&path)))
            .chain(err)
    });
    let path = dir.join(name.render());
    write_atomically(&path, schema, batches)?;
    let got = File::open(&path)
        .map_err(io("open", &path))
        .and_then(|f| ParquetRecordBatchReaderBuilder::try_new(f).map_err(parquet_error(&path)))?
        .metadata()
        .file_metadata()
        .num_rows();
    if got != expected {
        return Err(SinkError::Parquet {
            path: path.display().to_string(),
            message: format!("merged {got} rows of {expected}"),
        });
    }
    Ok(got as u64)
}

fn remove_dir(dir: &PathBuf) -> Result<(), SinkError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("remove", dir)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parquet::{read_offsets, test_file};

    #[test]
    fn closed_dates_are_merged_per_partition_and_open_ones_left() {
        let data = tempfile::tempdir().unwrap();
        let gps = root(data.path()).join("gps");
        let name = |partition, first, last| FileName {
            partition,
            first,
            last,
        };
        test_file(&gps, "2026-05-28", name(0, 0, 2), &[0, 1, 2]);
        test_file(&gps, "2026-05-28", name(0, 3, 9), &[3, 9]); // 4..8 on another day
        test_file(&gps, "2026-05-28", name(1, 0, 1), &[0, 1]);
        test_file(&gps, "2026-05-29", name(0, 4, 8), &[4, 8]);
        test_file(&gps, "2026-05-29", name(0, 10, 11), &[10, 11]);
        let before = NaiveDate::from_ymd_opt(2026, 5, 29).unwrap();
        let options = CompactOptions {
            dataset: None,
            before,
        };
        let done = compact(data.path(), &options).unwrap();
        assert_eq!(
            done,
            vec![Compacted {
                dataset: "gps".into(),
                date: "2026-05-28".into(),
                files_before: 3,
                files_after: 2,
                rows: 5,
            }]
        );
        let files = list_files(&gps).unwrap();
        let names: Vec<_> = files.iter().map(|f| (f.date.as_str(), f.name)).collect();
        assert_eq!(
            names,
            vec![
                ("2026-05-28", name(0, 0, 9)),
                ("2026-05-28", name(1, 0, 1)),
                ("2026-05-29", name(0, 4, 8)),
                ("2026-05-29", name(0, 10, 11)),
            ]
        );
        assert_eq!(read_offsets(&files[0].path).unwrap(), vec![0, 1, 2, 3, 9]);
        assert!(!data.path().join(".archive-staging").exists());
        // Nothing left to do the second time.
        assert!(compact(data.path(), &options).unwrap().is_empty());
    }
}
