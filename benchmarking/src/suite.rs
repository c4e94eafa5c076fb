//! The standard suite (`make bench`): every headline figure from one run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use ingest::KafkaConfig;
use schemas::Timestamp;

use crate::latency::{self, Setup};
use crate::process::{log_path, run_prefix};
use crate::report::{Report, Restart};
use crate::throughput;
use crate::workload::{self, Generated, Source};

/// What the suite runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `pace` binary (a release build).
    pub pace: PathBuf,
    /// Brokers.
    pub brokers: String,
    /// Where the report and logs go.
    pub out: PathBuf,
    /// Runners in the throughput race.
    pub runners: usize,
    /// Seconds of race preloaded for the throughput runs.
    pub seconds: usize,
    /// Worker counts to sweep.
    pub workers: Vec<usize>,
    /// Points the naive baseline reads (it is slow).
    pub naive_points: usize,
    /// Offered loads for the latency runs, points/s.
    pub loads: Vec<usize>,
    /// Races the offered load is spread over.
    pub latency_races: usize,
    /// Spectators in the latency runs.
    pub spectators: usize,
    /// One more latency run at this offered load (0: none)…
    pub big_load: usize,
    /// …with these many spectators, half of them on top-20 windows.
    pub big_spectators: usize,
    /// Workers in the latency runs.
    pub latency_workers: usize,
    /// The pipeline's epoch in the latency runs, milliseconds.
    pub tick_ms: u64,
    /// Warm-up and measured seconds of each latency run.
    pub warmup_s: u64,
    /// Whether the latency runs count the pipeline's time per operator
    /// (`pace pipeline --operator-seconds`), for the breakdown by stage.
    pub breakdown: bool,
    /// Measured seconds of each latency run.
    pub measure_s: u64,
    /// Subscriber counts of the fan-out runs (which also give the edge's
    /// memory per idle and per subscribed connection).
    pub fanout: Vec<usize>,
    /// Recorded race days replayed as fast as possible, with each worker
    /// count and `spectators` spectators.
    pub recorded: Vec<Source>,
}

/// What every measurement needs: the `pace` binary, the brokers, and where
/// reports and logs go.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// The `pace` binary (a release build).
    pub pace: &'a Path,
    /// Brokers.
    pub brokers: &'a str,
    /// Where the report and logs go.
    pub out: &'a Path,
}

impl Options {
    fn target(&self) -> Target<'_> {
        Target {
            pace: &self.pace,
            brokers: &self.brokers,
            out: &self.out,
        }
    }
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(
            "{prefix:>28} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} {msg}",
        )
        .expect("valid template"),
    );
    pb.set_prefix(what.to_owned());
    pb
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mem = crate::process::proc_kib("/proc/meminfo", "MemTotal:");
    format!("{cores} cores, {} GiB", mem / (1 << 20))
}

/// Runs the standings job over a preloaded topic with `workers`, its data
/// under a fresh directory.
fn standings_on(
    o: Target<'_>,
    kafka: &KafkaConfig,
    workers: usize,
    preloaded: &workload::Preloaded,
    what: &str,
) -> anyhow::Result<throughput::Standings> {
    let data = tempfile::tempdir()?;
    standings_in(o, kafka, workers, (data.path(), &[]), preloaded, what)
}

/// [`standings_on`] with its data under `data` and `extra` arguments.
fn standings_in(
    o: Target<'_>,
    kafka: &KafkaConfig,
    workers: usize,
    data: (&Path, &[String]),
    preloaded: &workload::Preloaded,
    what: &str,
) -> anyhow::Result<throughput::Standings> {
    let pb = bar(preloaded.last.len() as u64, what);
    pb.set_message("runners complete");
    // At least 5 minutes, more for a big preload (20k points/s at worst).
    let timeout = Duration::from_secs(300.max(preloaded.points as u64 / 20_000));
    let r = throughput::standings(
        kafka,
        o.pace,
        &log_path(o.out, "standings"),
        workers,
        data,
        preloaded,
        timeout,
        &|n| pb.set_position(n),
    )?;
    pb.finish_with_message(format!("{:.0} points/s", r.points_per_s));
    Ok(r)
}

/// Preloads `races` races of `runners` each, `seconds` long, into fresh topics.
fn preload(
    o: Target<'_>,
    races: usize,
    runners: usize,
    seconds: usize,
    what: &str,
) -> anyhow::Result<(KafkaConfig, workload::Preloaded, Generated)> {
    let kafka = KafkaConfig::new(o.brokers).with_topic_prefix(&run_prefix(what));
    tokio::runtime::Runtime::new()?.block_on(ingest::admin::ensure_topics(&kafka, 4))?;
    let mut race = Generated::new(races, runners, Timestamp::now());
    let pb = bar(
        (races * runners * seconds) as u64,
        &format!("preload {what}"),
    );
    let pre = workload::preload(&kafka, &mut race, seconds, &|n| pb.set_position(n))?;
    pb.finish_with_message(format!("{:.0} points/s", pre.points as f64 / pre.produce_s));
    Ok((kafka, pre, race))
}

/// Replays `source` at `speed` as `setup` says, with a progress bar.
pub fn replay_on(
    setup: &Setup<'_>,
    source: &Source,
    speed: f64,
) -> anyhow::Result<crate::replay::Replayed> {
    let pb = bar(
        0,
        &format!("{}, {} worker(s)", source.name(), setup.workers),
    );
    pb.set_message("records sent");
    let r = crate::replay::run(setup, source, speed, &|n| {
        pb.set_length(n);
        pb.set_position(n)
    })?;
    pb.finish_with_message(format!(
        "{:.0} records/s, frame p99 {} ms",
        r.records_per_s, r.produce_to_frame_ms.p99
    ));
    Ok(r)
}

/// `pace-bench restart`: a race of `runners` × `seconds` is preloaded, then
/// for each worker count `pace pipeline` starts on it twice, as after a
/// crash: first with no snapshot (it rebuilds from the start of retention,
/// writing snapshots every `snapshot_every_ms` as it goes), then again on the
/// same data directory (it resumes from the latest snapshot). The time from
/// serving until the standings show every runner's last point is the
/// restart time, with the peak RSS. With more than one worker count, each
/// then starts on a copy of every other count's data directory: the
/// restart after an operator changed the worker count.
pub fn restart(
    o: Target<'_>,
    (runners, seconds): (usize, usize),
    workers: &[usize],
    snapshot_every_ms: u64,
) -> anyhow::Result<Vec<Restart>> {
    std::fs::create_dir_all(o.out)?;
    let (kafka, pre, _) = preload(o, 1, runners, seconds, "restart")?;
    let extra = [
        "--snapshot-every-ms".to_owned(),
        snapshot_every_ms.to_string(),
    ];
    let mut out = Vec::new();
    let mut dirs = Vec::new();
    for &w in workers {
        let data = tempfile::tempdir()?;
        for from_snapshot in [false, true] {
            let snapshot_bytes = dir_bytes(&data.path().join("snapshots"));
            let what = format!(
                "restart, {w} worker(s), {}",
                if from_snapshot {
                    "snapshot"
                } else {
                    "no snapshot"
                }
            );
            let run = standings_in(o, &kafka, w, (data.path(), &extra), &pre, &what)?;
            out.push(Restart {
                taken_with: from_snapshot.then_some(w),
                snapshot_bytes,
                run,
            });
        }
        dirs.push((w, data));
    }
    for (taken, data) in &dirs {
        for &w in workers.iter().filter(|&&w| w != *taken) {
            let copy = tempfile::tempdir()?;
            copy_dir(data.path(), copy.path())?;
            let snapshot_bytes = dir_bytes(&copy.path().join("snapshots"));
            let what = format!("restart, {w} worker(s), snapshot of {taken}");
            let run = standings_in(o, &kafka, w, (copy.path(), &extra), &pre, &what)?;
            out.push(Restart {
                taken_with: Some(*taken),
                snapshot_bytes,
                run,
            });
        }
    }
    Ok(out)
}

/// Copies the files under `from` to `to`, directories and all.
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), target)?;
        }
    }
    Ok(())
}

/// Bytes of the files under `dir` (the snapshots kept: the latest two).
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Runs the suite, writing `report.json`, `report.md` and `latency.svg`
/// under `out`.
pub fn run(o: &Options) -> anyhow::Result<Report> {
    let t0 = Instant::now();
    std::fs::create_dir_all(&o.out)?;
    let (kafka, pre, race) = preload(o.target(), 1, o.runners, o.seconds, "throughput")?;
    let (mut standings, mut unbound) = (Vec::new(), Vec::new());
    for &w in &o.workers {
        // Each run on the same records: a fresh consumer group reads from the
        // start. First without epoch bindings (none recorded, none
        // followed), then with them: the first count records them, the
        // others follow what it recorded.
        let data = tempfile::tempdir()?;
        let off = ["--no-epoch-bindings".to_owned()];
        unbound.push(standings_in(
            o.target(),
            &kafka,
            w,
            (data.path(), &off),
            &pre,
            &format!("standings, {w} worker(s), no epoch bindings"),
        )?);
        standings.push(standings_on(
            o.target(),
            &kafka,
            w,
            &pre,
            &format!("standings, {w} worker(s)"),
        )?);
    }
    let pb = bar(pre.points as u64, "consume ceiling");
    let consumers = o.workers.iter().copied().max().unwrap_or(1);
    let ceiling = throughput::ceiling(&kafka, &kafka.topics.gps, pre.points, consumers)?;
    pb.finish_with_message(format!("{:.0} records/s", ceiling.per_s));
    let pb = bar(o.naive_points.min(pre.points) as u64, "naive baseline");
    let (naive, _) =
        throughput::naive(&kafka, &race.definitions(), o.naive_points.min(pre.points))?;
    pb.finish_with_message(format!("{:.0} points/s", naive.per_s));

    // The same number of points over ten times the runners (ten such races:
    // a definition of 20,000 runners would pass the 512 KiB a definition may
    // take): the difference in resident memory is the per-runner state.
    let many = o.runners * 10;
    let (kafka_many, pre_many, _) = preload(
        o.target(),
        10,
        o.runners,
        (pre.points / many).max(1),
        "memory",
    )?;
    let memory_run = standings_on(
        o.target(),
        &kafka_many,
        1,
        &pre_many,
        "standings, 10× runners",
    )?;
    let base = standings
        .iter()
        .find(|r| r.workers == 1)
        .unwrap_or(&standings[0]);
    let state_bytes_per_runner =
        (memory_run.rss as f64 - base.rss as f64) / (memory_run.runners - base.runners) as f64;

    let mut latency_runs = Vec::new();
    let loads = o.loads.iter().map(|&load| (load, o.spectators, 0));
    let big = (o.big_load > 0).then_some((o.big_load, o.big_spectators, o.big_spectators / 2));
    for (load, spectators, windows) in loads.chain(big) {
        let setup = Setup {
            pace: &o.pace,
            out: &o.out,
            brokers: &o.brokers,
            races: o.latency_races,
            participants: load / o.latency_races,
            spectators,
            windows,
            workers: o.latency_workers,
            tick_ms: o.tick_ms,
            warmup_s: o.warmup_s,
            measure_s: o.measure_s,
            operator_seconds: o.breakdown,
        };
        let total = (load as u64) * (o.warmup_s + o.measure_s);
        let pb = bar(total, &format!("latency at {load} points/s"));
        let r = latency::run(&setup, &|n| pb.set_position(n))?;
        pb.finish_with_message(format!(
            "frame p50 {} ms, p99 {} ms",
            r.produce_to_frame_ms.p50, r.produce_to_frame_ms.p99
        ));
        latency_runs.push(r);
    }
    let fanout_options = crate::fanout::Options {
        setup: Setup {
            warmup_s: o.warmup_s,
            measure_s: o.measure_s,
            ..Setup::processes(&o.pace, &o.out, &o.brokers, o.latency_workers, 0, o.tick_ms)
        },
        runners: crate::fanout::RUNNERS,
    };
    let mut fanout = Vec::new();
    for &n in &o.fanout {
        let pb = bar(n as u64, &format!("fan-out to {n}"));
        let r = crate::fanout::run(&fanout_options, n)?;
        pb.finish_with_message(format!(
            "{} held, spread p99 {} ms, {:.0} bytes per idle connection",
            r.subscribers, r.spread_ms.p99, r.bytes_per_idle
        ));
        fanout.push(r);
    }

    let mut replays = Vec::new();
    for source in &o.recorded {
        for &w in &o.workers {
            let setup = Setup::processes(&o.pace, &o.out, &o.brokers, w, o.spectators, o.tick_ms);
            replays.push(replay_on(&setup, source, 0.0)?);
        }
    }

    let report = Report {
        when: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        machine: machine(),
        runners: o.runners,
        points: pre.points,
        produce_per_s: pre.points as f64 / pre.produce_s,
        standings,
        unbound,
        ceiling,
        ceiling_consumers: consumers,
        naive,
        memory_run,
        state_bytes_per_runner,
        latency: latency_runs,
        fanout,
        replays,
        suite_s: t0.elapsed().as_secs_f64(),
    };
    write(&o.out, &report)?;
    Ok(report)
}

fn write(out: &Path, report: &Report) -> anyhow::Result<()> {
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(report)?,
    )?;
    std::fs::write(out.join("report.md"), report.markdown())?;
    std::fs::write(out.join("latency.svg"), report.svg())?;
    Ok(())
}
