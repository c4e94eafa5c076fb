//! Throughput of the standings job, and the two reference points beside it.
//!
//! - [`standings`]: a generated race is preloaded into `pace.gps`, then
//!   `pace pipeline` starts on it; the clock runs from the moment it serves
//!   until the standings changelog shows every runner's last point (or,
//!   for the few whose last point the job rightly refused as an outlier,
//!   until the changelog has been quiet for 3 s: the time of the last change),
//!   or until the pipeline has committed every input record (a restart
//!   from a snapshot writes only the changes the changelog does not hold).
//! - [`ceiling`]: the same topic read again with no processing at all, by
//!   as many consumers as the most workers measured.
//! - [`naive`]: the same topic read by one thread that decodes each point,
//!   projects it on the course, keeps a `HashMap` per runner and re-sorts
//!   the race on every point: what a simple implementation does.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use ingest::KafkaConfig;
use ingest::reader::{Reader, Start};
use ingest::source::StaticConsumer;
use schemas::{GpsPoint, LatLon, RaceDefinition, RaceKind, StandingsChange, Timestamp};
use serde::Serialize;

use crate::process::Pace;
use crate::workload::Preloaded;

/// One pipeline run over a preloaded race.
#[derive(Clone, Debug, Serialize)]
pub struct Standings {
    /// Timely workers.
    pub workers: usize,
    /// Points processed.
    pub points: usize,
    /// Seconds from pace serving to the standings reflecting the last point.
    pub seconds: f64,
    /// `points / seconds`.
    pub points_per_s: f64,
    /// Standings changelog records read.
    pub changes: usize,
    /// Runners whose last point showed in the standings (the rest were
    /// refused as outliers).
    pub runners_complete: usize,
    /// Runners.
    pub runners: usize,
    /// CPU seconds pace used.
    pub cpu_s: f64,
    /// Peak resident memory of pace, bytes.
    pub peak_rss: u64,
    /// Resident memory of pace once done, bytes.
    pub rss: u64,
    /// How long writing a snapshot part held a worker, mean and longest,
    /// seconds (`/metrics`); `None` if no part was written.
    pub snapshot_pause_s: Option<(f64, f64)>,
    /// The snapshot point the start restored, Unix seconds (`/metrics`);
    /// `None` if it restored none.
    pub restored_s: Option<f64>,
}

/// How long the changelog may be quiet before a run counts as done.
const QUIET: Duration = Duration::from_secs(3);

/// Runs `pace pipeline --workers N` (with `extra` arguments, its data under
/// `data`) over what `preloaded` put into `kafka`.
#[allow(clippy::too_many_arguments)]
pub fn standings(
    kafka: &KafkaConfig,
    pace_bin: &Path,
    log: &Path,
    workers: usize,
    (data, extra): (&Path, &[String]),
    preloaded: &Preloaded,
    timeout: Duration,
    progress: &dyn Fn(u64),
) -> anyhow::Result<Standings> {
    // Earlier runs on the same input left their changes there: read only
    // what this run writes.
    let mut changelog = from_end(kafka, &kafka.topics.standings)?;
    // A restart from a snapshot makes again the changes it made after the
    // snapshot and writes only those the changelog does not hold (none, if
    // the run before it finished): it is done once its consumer group has
    // committed every input record, which this run's commits reach from 0.
    let committed = Committed::reset(kafka)?;
    let mut args = crate::process::pace_args("pipeline", kafka, workers, data);
    args.push("--no-archive".into());
    args.extend(extra.iter().cloned());
    let pace = Pace::start(pace_bin, &args, log)?;
    let t0 = pace.ready;
    let mut seen: HashMap<(String, String), Timestamp> = HashMap::new();
    let mut done = 0;
    let mut changes = 0;
    let mut last_change = t0;
    let mut checked = t0;
    let want = &preloaded.last;
    loop {
        let batch = changelog.poll(4096, Duration::ZERO);
        let now = Instant::now();
        if batch.is_empty() {
            if done == want.len() || (changes > 0 && now - last_change > QUIET) {
                break;
            }
            if now - checked > Duration::from_millis(100) {
                checked = now;
                if committed.at_end()? {
                    last_change = now;
                    break;
                }
            }
            anyhow::ensure!(
                now - t0 < timeout,
                "standings incomplete after {timeout:?}: {done} of {} runners",
                want.len()
            );
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        last_change = now;
        for (_, raw) in batch {
            let change: StandingsChange = serde_json::from_slice(&raw.payload)?;
            changes += 1;
            for row in change.upserts {
                let key = (row.race, row.participant);
                let target = want.get(&key).copied();
                let before = seen.insert(key, row.last_seen);
                let was = before.is_some() && before == target;
                let is = Some(row.last_seen) == target;
                match (was, is) {
                    (false, true) => done += 1,
                    (true, false) => done -= 1,
                    _ => {}
                }
            }
        }
        progress(done as u64);
    }
    let seconds = (last_change - t0).as_secs_f64();
    let metrics = pace.metrics()?;
    let result = Standings {
        workers,
        points: preloaded.points,
        seconds,
        points_per_s: preloaded.points as f64 / seconds,
        changes,
        runners_complete: done,
        runners: want.len(),
        cpu_s: pace.cpu_s(),
        peak_rss: pace.peak_rss(),
        rss: pace.rss(),
        snapshot_pause_s: snapshot_pause(&metrics),
        restored_s: crate::process::samples(&metrics, "pace_snapshot_restored_point_seconds")
            .find(|p| *p > 0.0),
    };
    pace.stop()?;
    Ok(result)
}

/// The mean and longest snapshot pause on a `/metrics` page, seconds.
fn snapshot_pause(metrics: &str) -> Option<(f64, f64)> {
    use crate::process::samples;
    let count: f64 = samples(metrics, "pace_snapshot_pause_seconds_count").sum();
    let sum: f64 = samples(metrics, "pace_snapshot_pause_seconds_sum").sum();
    let max = samples(metrics, "pace_snapshot_pause_max_seconds").fold(0.0, f64::max);
    (count > 0.0).then(|| (sum / count, max))
}

/// The offsets `pace pipeline` commits (its default group) on the input
/// topics, against their ends.
struct Committed {
    reader: Reader,
    /// Per topic, each partition's end.
    ends: Vec<(String, Vec<(i32, i64)>)>,
}

impl Committed {
    /// Sets the group's offsets back to 0, so that only the next run's
    /// commits bring them to the ends.
    fn reset(kafka: &KafkaConfig) -> anyhow::Result<Self> {
        let group = "pace-pipeline";
        let reader = Reader::new(kafka, group, &[])?;
        let mut ends = Vec::new();
        for topic in [&kafka.topics.gps, &kafka.topics.races] {
            let mut parts = Vec::new();
            for p in 0..reader.partitions(topic)? {
                parts.push((p, reader.watermarks(topic, p)?.1));
            }
            let zero: std::collections::BTreeMap<i32, i64> =
                parts.iter().map(|(p, _)| (*p, 0)).collect();
            StaticConsumer::new(kafka, group, topic, 0, 1)?.commit(&zero, true)?;
            ends.push((topic.clone(), parts));
        }
        Ok(Self { reader, ends })
    }

    /// Whether every input record is committed.
    fn at_end(&self) -> anyhow::Result<bool> {
        for (topic, parts) in &self.ends {
            let ps: Vec<i32> = parts.iter().map(|(p, _)| *p).collect();
            let got = self.reader.committed(topic, &ps)?;
            if parts
                .iter()
                .any(|(p, end)| *end > 0 && got.get(p).is_none_or(|c| c < end))
            {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// A reader of every partition of `topic` from its end now.
fn from_end(kafka: &KafkaConfig, topic: &str) -> anyhow::Result<Reader> {
    let mut reader = Reader::new(kafka, "pace-bench", &[])?;
    let mut starts = Vec::new();
    for p in 0..reader.partitions(topic)? {
        let (_, high) = reader.watermarks(topic, p)?;
        starts.push((topic.to_owned(), p, Start::At(high)));
    }
    reader.assign(&starts)?;
    Ok(reader)
}

/// A rate: how many in how long.
#[derive(Clone, Debug, Serialize)]
pub struct Rate {
    /// Records.
    pub records: usize,
    /// Seconds.
    pub seconds: f64,
    /// `records / seconds`.
    pub per_s: f64,
}

impl Rate {
    fn new(records: usize, since: Instant) -> Self {
        let seconds = since.elapsed().as_secs_f64();
        Self {
            records,
            seconds,
            per_s: records as f64 / seconds,
        }
    }
}

/// Reads all `n` records of `topic` from the start with `consumers`
/// consumers in parallel, each owning the partitions a pipeline worker of
/// as many would, looking at none of the records.
pub fn ceiling(
    kafka: &KafkaConfig,
    topic: &str,
    n: usize,
    consumers: usize,
) -> anyhow::Result<Rate> {
    // The clock starts before the consumers exist: they fetch ahead in the
    // background from the moment they are assigned, and the pipeline's
    // clock also runs while its consumers start.
    let t0 = Instant::now();
    let readers = (0..consumers)
        .map(|i| StaticConsumer::new(kafka, "pace-bench-ceiling", topic, i, consumers))
        .collect::<Result<Vec<_>, _>>()?;
    let read = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for mut raw in readers {
            let read = &read;
            s.spawn(move || {
                while read.load(std::sync::atomic::Ordering::Relaxed) < n
                    && t0.elapsed() < Duration::from_secs(300)
                {
                    let got = raw.poll(8192).len();
                    if got == 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    read.fetch_add(got, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    let read = read.into_inner();
    anyhow::ensure!(read >= n, "ceiling: {read} of {n} in 300 s");
    Ok(Rate::new(read, t0))
}

/// A course as a naive implementation holds it: vertices in metres east and
/// north of the first, and the distance along the course at each.
struct Course {
    origin: LatLon,
    xy: Vec<(f64, f64)>,
    along: Vec<f64>,
    length: f64,
}

impl Course {
    fn new(def: &RaceDefinition) -> Option<Course> {
        let RaceKind::Course { polyline, .. } = &def.kind else {
            return None;
        };
        let origin = *polyline.first()?;
        let xy: Vec<(f64, f64)> = polyline.iter().map(|p| local(origin, *p)).collect();
        let mut along = vec![0.0];
        for w in xy.windows(2) {
            let d = (w[1].0 - w[0].0).hypot(w[1].1 - w[0].1);
            along.push(along.last().copied().unwrap_or(0.0) + d);
        }
        let length = along.last().copied().unwrap_or(0.0);
        Some(Course {
            origin,
            xy,
            along,
            length,
        })
    }

    /// Distance along the course of the nearest point on it.
    fn project(&self, p: LatLon) -> f64 {
        let (px, py) = local(self.origin, p);
        let mut best = (f64::MAX, 0.0);
        for (i, w) in self.xy.windows(2).enumerate() {
            let (dx, dy) = (w[1].0 - w[0].0, w[1].1 - w[0].1);
            let len2 = dx * dx + dy * dy;
            let t = if len2 > 0.0 {
                (((px - w[0].0) * dx + (py - w[0].1) * dy) / len2).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let (x, y) = (w[0].0 + t * dx, w[0].1 + t * dy);
            let d2 = (px - x).powi(2) + (py - y).powi(2);
            if d2 < best.0 {
                best = (d2, self.along[i] + t * len2.sqrt());
            }
        }
        best.1
    }
}

/// `p` in metres east and north of `origin` (equirectangular).
fn local(origin: LatLon, p: LatLon) -> (f64, f64) {
    const M_PER_DEG: f64 = 111_320.0;
    (
        (p.lon - origin.lon) * M_PER_DEG * origin.lat.to_radians().cos(),
        (p.lat - origin.lat) * M_PER_DEG,
    )
}

/// One runner, as the naive consumer keeps them.
struct Runner {
    laps: u32,
    along: f64,
    progress: f64,
}

/// Reads `n` points of `kafka`'s GPS topic in one thread: decode, project,
/// update the runner, re-rank the whole race. Returns the rate and the
/// leader of each race at the end (so the work cannot be optimised away).
pub fn naive(
    kafka: &KafkaConfig,
    definitions: &[RaceDefinition],
    n: usize,
) -> anyhow::Result<(Rate, Vec<String>)> {
    let courses: HashMap<&str, Course> = definitions
        .iter()
        .filter_map(|d| Some((d.id.as_str(), Course::new(d)?)))
        .collect();
    let mut consumer = StaticConsumer::new(kafka, "pace-bench-naive", &kafka.topics.gps, 0, 1)?;
    let mut races: HashMap<String, HashMap<String, Runner>> = HashMap::new();
    let mut leaders: HashMap<String, String> = HashMap::new();
    let t0 = Instant::now();
    let mut read = 0;
    while read < n {
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(600),
            "naive: {read} of {n}"
        );
        let batch = consumer.poll(4096);
        if batch.is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
        for raw in batch {
            read += 1;
            let Ok(p) = serde_json::from_slice::<GpsPoint>(&raw.payload) else {
                continue;
            };
            let Some(course) = courses.get(p.race.as_str()) else {
                continue;
            };
            let along = course.project(LatLon {
                lat: p.lat,
                lon: p.lon,
            });
            let race = races.entry(p.race.clone()).or_default();
            let r = race.entry(p.participant).or_insert(Runner {
                laps: 0,
                along,
                progress: along,
            });
            // Crossing the line: far back along the course means a new lap.
            if along < r.along - course.length / 2.0 {
                r.laps += 1;
            }
            r.along = along;
            r.progress = r.progress.max(f64::from(r.laps) * course.length + along);
            // Re-rank the race.
            let mut ranked: Vec<(&String, f64)> =
                race.iter().map(|(id, r)| (id, r.progress)).collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
            if let Some((leader, _)) = ranked.first() {
                leaders.insert(p.race, (*leader).clone());
            }
        }
    }
    Ok((Rate::new(read, t0), leaders.into_values().collect()))
}
