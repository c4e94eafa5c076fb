//! The suite's results: JSON (everything), a Markdown table (the headline
//! figures) and an SVG plot of latency against offered load.

use std::fmt::Write;

use serde::Serialize;

use crate::fanout::Fanout;
use crate::latency::{P50_P99, P50_P99_MAX, P99, Run};
use crate::replay::Replayed;
use crate::throughput::{Rate, Standings};

/// One restart measured by `pace-bench restart`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Restart {
    /// The worker count of the snapshots on disk when it started (`None`:
    /// it started with none).
    pub taken_with: Option<usize>,
    /// Bytes of the snapshots on disk when it started (the latest two; 0
    /// without).
    pub snapshot_bytes: u64,
    /// The run: its `seconds` is the restart time.
    pub run: Standings,
}

/// Everything one `pace-bench suite` measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// When, RFC 3339.
    pub when: String,
    /// What the machine is (`nproc`, memory), for reading the figures.
    pub machine: String,
    /// Runners in the throughput race.
    pub runners: usize,
    /// Points preloaded for the throughput runs.
    pub points: usize,
    /// Points per second the producer reached while preloading.
    pub produce_per_s: f64,
    /// The standings job, per worker count.
    pub standings: Vec<Standings>,
    /// The same runs without epoch bindings (`--no-epoch-bindings`), each
    /// just before its counterpart in `standings`.
    pub unbound: Vec<Standings>,
    /// Reading the topic with no processing, with as many consumers as the
    /// most workers.
    pub ceiling: Rate,
    /// Consumers of the ceiling run.
    pub ceiling_consumers: usize,
    /// One thread, a HashMap and a re-sort per point.
    pub naive: Rate,
    /// The memory run: as many points over ten times the runners.
    pub memory_run: Standings,
    /// Standings state per runner: the resident-memory difference of the
    /// two runs over the difference in runners, bytes.
    pub state_bytes_per_runner: f64,
    /// Fixed-load latency runs, by offered load.
    pub latency: Vec<Run>,
    /// Fan-out runs, by subscribers: the edge's delivery and its memory
    /// per idle and per subscribed connection.
    pub fanout: Vec<Fanout>,
    /// The recorded race days, replayed as fast as possible.
    pub replays: Vec<Replayed>,
    /// Seconds the suite took.
    pub suite_s: f64,
}

/// Replays as a Markdown table.
pub fn replay_table(runs: &[Replayed]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| race day | speed | workers | records | records/s | complete | produce→view p50 / p99 | produce→frame p50 / p99 (spectators) | pipeline CPU s | pipeline µs / record | changelog bytes / record | rows / record | pipeline peak RSS |"
    );
    let _ = writeln!(
        s,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for r in runs {
        let (v, f) = (&r.produce_to_view_ms, &r.produce_to_frame_ms);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} of {} | {} | {} ({}) | {:.1} | {} | {:.0} MiB |",
            r.dataset,
            if r.speed > 0.0 {
                format!("{}×", r.speed)
            } else {
                "max".into()
            },
            r.workers,
            r.records,
            r.rate(),
            r.participants_complete,
            r.participants,
            v.ms(P50_P99),
            f.ms(P50_P99),
            r.spectators,
            r.pipeline_cpu_s,
            per_point(&r.changelog, r.pipeline_cpu_s, r.records as u64),
            mib(r.pipeline_peak_rss)
        );
    }
    s
}

/// The fan-out runs as a Markdown table, with a line for each size cut
/// short of what was asked.
pub fn fanout_table(runs: &[Fanout]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| subscribers | runners | frame KB | frames | delivered / s | produce→frame p50 / p99 | fan-out spread p50 / p99 / max | missed | lag snapshots | edge µs / delivered frame | edge bytes / idle connection | edge bytes / subscriber | edge peak RSS |"
    );
    let _ = writeln!(
        s,
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for r in runs {
        // A run in which no frame came measured nothing: it says so, never 0.
        let measured = |v: String| {
            if r.frames == 0 {
                "none measured".to_owned()
            } else {
                v
            }
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} | {:.0} | {:.0} MiB |",
            r.subscribers,
            r.runners,
            measured(format!("{:.1}", r.frame_bytes / 1000.0)),
            r.frames,
            measured(format!("{:.0}", r.delivered_per_s)),
            r.delay_ms.ms(P50_P99),
            r.spread_ms.ms(P50_P99_MAX),
            r.missed,
            r.lag_snapshots,
            measured(format!("{:.1}", r.edge_us_per_frame)),
            r.bytes_per_idle,
            r.bytes_per_subscriber,
            mib(r.edge_peak_rss)
        );
    }
    for r in runs {
        if let Some(cut) = &r.cut {
            let _ = writeln!(s, "\n- {} subscribers asked: {cut}.", r.asked);
        }
    }
    s
}

/// Pipeline µs, changelog bytes and rows per point, as three table cells;
/// a run that sent nothing says so in each.
fn per_point(c: &crate::observers::Changelog, pipeline_cpu_s: f64, sent: u64) -> String {
    match c.per_point(pipeline_cpu_s, sent) {
        Some((us, bytes, rows)) => format!("{us:.1} | {bytes:.0} | {rows:.2}"),
        None => "none sent | none sent | none sent".into(),
    }
}

/// Whether a standings run measured a throughput: some runner complete,
/// and a rate above 0.
fn measured(r: &Standings) -> bool {
    r.runners_complete > 0 && r.points_per_s.is_finite() && r.points_per_s > 0.0
}

/// Throughput with epoch bindings (`with`) of the same run without them
/// (`without`), as a percentage, unless either measured nothing.
fn with_bindings(with: &Standings, without: &Standings) -> String {
    let workers = format!("{} worker{}", with.workers, plural(with.workers));
    if measured(with) && measured(without) {
        let share = 100.0 * with.points_per_s / without.points_per_s;
        format!("{workers}: {share:.0}%")
    } else {
        format!("{workers}: not measured (a run measured nothing)")
    }
}

/// `"s"` for any count but one.
fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// A restart's runners complete: a restart from a snapshot that wrote no
/// change (the changelog held them all) says so instead of "0 of N".
fn complete(r: &Restart) -> String {
    if r.run.changes == 0 && r.run.restored_s.is_some() {
        "none written: all in the changelog already".to_owned()
    } else {
        format!("{} of {}", r.run.runners_complete, r.run.runners)
    }
}

/// Restarts (`pace-bench restart`) as Markdown.
pub fn restart_table(runs: &[Restart]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| workers | start | snapshots on disk | points | runners complete | restart s | CPU s | peak RSS | snapshot pause mean / max |"
    );
    let _ = writeln!(
        s,
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for r in runs {
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} MiB | {} | {} | {:.1} | {:.1} | {:.0} MiB | {} |",
            r.run.workers,
            match (r.taken_with, r.run.restored_s) {
                (None, _) => "no snapshot: from the start of retention".to_owned(),
                (Some(t), Some(_)) if t == r.run.workers => "from the latest snapshot".to_owned(),
                (Some(t), Some(_)) => format!("from the latest snapshot, taken with {t} worker(s)"),
                (Some(t), None) => format!(
                    "snapshot taken with {t} worker(s), not restored: from the start of retention"
                ),
            },
            mib(r.snapshot_bytes),
            r.run.points,
            complete(r),
            r.run.seconds,
            r.run.cpu_s,
            mib(r.run.peak_rss),
            match r.run.snapshot_pause_s {
                Some((mean, max)) => format!("{:.1} / {:.1} ms", mean * 1e3, max * 1e3),
                None => "none written".into(),
            }
        );
    }
    s
}

/// The produce→frame p99 a load must stay under to count as kept up with.
pub const UNDER_MS: u64 = 100;

/// The highest offered load whose produce→frame p99 stayed under `ms`; a
/// run that measured no frame does not count.
pub fn highest_load_under(runs: &[Run], ms: u64) -> Option<f64> {
    runs.iter()
        .filter(|r| r.produce_to_frame_ms.count > 0 && r.produce_to_frame_ms.p99 < ms)
        .map(|r| r.offered_per_s)
        .reduce(f64::max)
}

/// The sentence the report gives [`highest_load_under`].
fn highest_load_line(runs: &[Run], ms: u64) -> String {
    let offered: Vec<String> = runs
        .iter()
        .map(|r| format!("{:.0}", r.offered_per_s))
        .collect();
    let top = runs.iter().map(|r| r.offered_per_s).reduce(f64::max);
    match highest_load_under(runs, ms) {
        Some(load) if Some(load) == top => format!(
            "Highest offered load with produce→frame p99 under {ms} ms: {load:.0} points/s, the highest run (of {}); higher `--loads` would find the limit.",
            offered.join(", ")
        ),
        Some(load) => format!(
            "Highest offered load with produce→frame p99 under {ms} ms: {load:.0} points/s (of {}).",
            offered.join(", ")
        ),
        None => format!(
            "Highest offered load with produce→frame p99 under {ms} ms: none (of {}): every run was slower or measured nothing.",
            if offered.is_empty() {
                "no runs".to_owned()
            } else {
                offered.join(", ")
            }
        ),
    }
}

impl Report {
    /// The headline figures as Markdown.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let best = self
            .standings
            .iter()
            .map(|r| r.points_per_s)
            .fold(0.0, f64::max);
        let _ = writeln!(
            s,
            "### Standings throughput: generated race, {} runners, {} points\n",
            self.runners, self.points
        );
        let _ = writeln!(
            s,
            "| what | points/s | vs ceiling | vs naive | CPU s | peak RSS |"
        );
        let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: | ---: |");
        for (i, r) in self.standings.iter().enumerate() {
            let off = self.unbound.iter().find(|u| u.workers == r.workers);
            let bindings = match (i, off) {
                (_, None) => "",
                (0, _) => ", recording epoch bindings",
                _ => ", following the epoch bindings above",
            };
            let rows = off
                .map(|u| (u, ", no epoch bindings"))
                .into_iter()
                .chain([(r, bindings)]);
            for (r, what) in rows {
                let workers = format!("{} worker{}", r.workers, plural(r.workers));
                if !measured(r) {
                    let _ = writeln!(
                        s,
                        "| standings, {workers}{what} | none measured ({} of {} runners complete) | | | {:.1} | {:.0} MiB |",
                        r.runners_complete,
                        r.runners,
                        r.cpu_s,
                        mib(r.peak_rss)
                    );
                    continue;
                }
                let _ = writeln!(
                    s,
                    "| standings, {workers}{what} | {:.0} | {:.0}% | {:.1}× | {:.1} | {:.0} MiB |",
                    r.points_per_s,
                    100.0 * r.points_per_s / self.ceiling.per_s,
                    r.points_per_s / self.naive.per_s,
                    r.cpu_s,
                    mib(r.peak_rss)
                );
            }
        }
        let _ = writeln!(
            s,
            "| consume ceiling ({} consumer{}, no processing) | {:.0} | 100% | | | |",
            self.ceiling_consumers,
            plural(self.ceiling_consumers),
            self.ceiling.per_s
        );
        let _ = writeln!(
            s,
            "| naive (HashMap, re-sort per point) | {:.0} | {:.0}% | 1.0× | | |",
            self.naive.per_s,
            100.0 * self.naive.per_s / self.ceiling.per_s
        );
        let _ = writeln!(
            s,
            "\nBest standings: {:.0}% of the ceiling, {:.1}× the naive baseline.",
            100.0 * best / self.ceiling.per_s,
            best / self.naive.per_s
        );
        let ratios: Vec<String> = self
            .standings
            .iter()
            .filter_map(|r| {
                let u = self.unbound.iter().find(|u| u.workers == r.workers)?;
                Some(with_bindings(r, u))
            })
            .collect();
        if !ratios.is_empty() {
            let _ = writeln!(
                s,
                "Throughput with epoch bindings, of the same run without them: {}.",
                ratios.join(", ")
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "### Latency at a fixed offered load (spectators follow a runner, or watch a race's top-20 window)\n"
        );
        let _ = writeln!(
            s,
            "| offered points/s | spectators (on windows; dropped) | sent points/s | produce→view p50 / p99 | produce→frame p50 / p99 / max | frame p99, 1st / 2nd half | frames | pipeline cores | edge cores | pipeline µs / point | changelog bytes / point | rows / point |"
        );
        let _ = writeln!(
            s,
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for r in &self.latency {
            let (v, f) = (&r.produce_to_view_ms, &r.produce_to_frame_ms);
            let _ = writeln!(
                s,
                "| {:.0} | {} ({}; {}) | {:.0} | {} | {} | {} / {} | {} | {:.2} | {:.2} | {} |",
                r.offered_per_s,
                r.spectators,
                r.windows,
                r.dropped,
                r.sent_per_s,
                v.ms(P50_P99),
                f.ms(P50_P99_MAX),
                r.produce_to_frame_halves_ms[0].ms(P99),
                r.produce_to_frame_halves_ms[1].ms(P99),
                r.frames,
                r.pipeline_cores,
                r.edge_cores,
                per_point(&r.changelog, r.pipeline_cpu_s, r.sent)
            );
        }
        let _ = writeln!(s, "\n{}", highest_load_line(&self.latency, UNDER_MS));
        for r in self.latency.iter().filter(|r| r.dropped > 0) {
            let why: Vec<String> = (r.dropped_why.iter())
                .map(|(why, n)| format!("{n} × {why}"))
                .collect();
            let refused: Vec<String> = (r.edge_refused.iter())
                .map(|(why, n)| format!("{why} {n}"))
                .collect();
            let _ = writeln!(
                s,
                "\nDropped at {:.0} points/s: {}. The edge counted as refused: {}.",
                r.offered_per_s,
                why.join("; "),
                if refused.is_empty() {
                    "none".to_owned()
                } else {
                    refused.join(", ")
                }
            );
        }
        let _ = writeln!(
            s,
            "\n### Where the pipeline's time goes in those runs, µs per point by stage\n"
        );
        let stages: Vec<_> = (self.latency.iter())
            .map(|r| (r.offered_per_s, r.stages.as_ref()))
            .collect();
        s.push_str(&crate::stages::table(&stages));
        if !self.replays.is_empty() {
            let _ = writeln!(s, "\n### Recorded races, replayed as fast as possible\n");
            s.push_str(&replay_table(&self.replays));
        }
        let _ = writeln!(s, "\n### Memory\n");
        let _ = writeln!(
            s,
            "- standings state: {:.0} bytes per runner ({} → {} runners: {:.0} → {:.0} MiB resident)",
            self.state_bytes_per_runner,
            self.runners,
            self.memory_run.runners,
            mib(self.standings.first().map_or(0, |r| r.rss)),
            mib(self.memory_run.rss)
        );
        for r in &self.fanout {
            let _ = writeln!(
                s,
                "- edge, {} connections: {:.0} bytes per idle WebSocket, {:.0} per one subscribed to a race",
                r.subscribers, r.bytes_per_idle, r.bytes_per_subscriber
            );
        }
        if !self.fanout.is_empty() {
            let _ = writeln!(
                s,
                "\n### Fan-out: one race's changes to N subscribers on one edge\n"
            );
            s.push_str(&fanout_table(&self.fanout));
        }
        let _ = writeln!(s, "\n{} · suite took {:.0} s", self.machine, self.suite_s);
        s
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::latency::Percentiles;

    #[test]
    fn a_replay_that_showed_no_runner_says_none_measured() {
        let none = Percentiles {
            count: 0,
            p50: 0,
            p90: 0,
            p99: 0,
            p999: 0,
            max: 0,
        };
        let mut r = Replayed {
            dataset: "Boston 2015".into(),
            speed: 0.0,
            workers: 2,
            spectators: 100,
            records: 292_142,
            produce_s: 2.0,
            seconds: 5.5,
            records_per_s: 53_163.0,
            participants: 26_598,
            participants_complete: 0,
            produce_to_view_ms: none.clone(),
            produce_to_frame_ms: none,
            frames: 0,
            pipeline_cpu_s: 8.0,
            edge_cpu_s: 1.0,
            pipeline_peak_rss: 1 << 30,
            edge_peak_rss: 1 << 28,
            changelog: Default::default(),
        };
        let row = replay_table(std::slice::from_ref(&r));
        assert!(row.contains("| none measured | 0 of 26598 |"), "{row}");
        assert!(row.contains("none measured (100)"), "{row}");
        assert!(!row.contains("53163"), "{row}");
        r.participants_complete = 13_292;
        assert_eq!(r.rate(), "53163 (partial)");
        r.participants_complete = 26_598;
        assert_eq!(r.rate(), "53163");
    }

    /// A latency run at `offered` points/s with `count` frames measured.
    pub(crate) fn run(offered: f64, count: u64, p99: u64) -> Run {
        let frame = Percentiles {
            count,
            p50: p99 / 2,
            p90: p99,
            p99,
            p999: p99,
            max: p99,
        };
        Run {
            offered_per_s: offered,
            sent_per_s: offered,
            spectators: 1000,
            windows: 0,
            workers: 2,
            tick_ms: 50,
            seconds: 10.0,
            produce_to_view_ms: frame.clone(),
            produce_to_frame_halves_ms: [frame.clone(), frame.clone()],
            produce_to_frame_ms: frame,
            frames: count,
            dropped: 0,
            dropped_why: vec![],
            edge_refused: vec![],
            pipeline_cores: 0.5,
            edge_cores: 0.2,
            pipeline_peak_rss: 0,
            edge_peak_rss: 0,
            pipeline_cpu_s: 5.0,
            changelog: Default::default(),
            sent: 100,
            stages: None,
        }
    }

    #[test]
    fn the_highest_load_under_the_bound_skips_slow_and_unmeasured_runs() {
        let runs = [
            run(10_000.0, 5, 80),
            run(25_000.0, 5, 99),
            run(50_000.0, 5, 176),
        ];
        assert_eq!(highest_load_under(&runs, 100), Some(25_000.0));
        assert!(
            highest_load_line(&runs, 100).contains(": 25000 points/s (of 10000, 25000, 50000)")
        );
        // A collapsed run that measured nothing is not under the bound.
        let runs = [run(10_000.0, 5, 150), run(50_000.0, 0, 0)];
        assert_eq!(highest_load_under(&runs, 100), None);
        assert!(highest_load_line(&runs, 100).contains("none (of 10000, 50000)"));
        let runs = [run(10_000.0, 5, 20), run(50_000.0, 5, 40)];
        assert!(highest_load_line(&runs, 100).contains("the highest run"));
    }

    fn standings(workers: usize, points_per_s: f64, complete: usize) -> Standings {
        Standings {
            workers,
            points: 1000,
            seconds: 1.0,
            points_per_s,
            changes: 10,
            runners_complete: complete,
            runners: 10,
            cpu_s: 1.0,
            peak_rss: 0,
            rss: 0,
            snapshot_pause_s: None,
            restored_s: None,
        }
    }

    #[test]
    fn the_cost_of_bindings_is_a_share_only_when_both_runs_measured_something() {
        let with = standings(2, 970.0, 10);
        assert_eq!(
            with_bindings(&with, &standings(2, 1000.0, 10)),
            "2 workers: 97%"
        );
        for nothing in [
            standings(2, 0.0, 0),
            standings(2, f64::NAN, 10),
            standings(2, 5.0, 0),
        ] {
            let said = with_bindings(&with, &nothing);
            assert!(said.contains("not measured"), "{said}");
            assert!(with_bindings(&nothing, &with).contains("not measured"));
        }
    }

    #[test]
    fn a_fanout_run_that_got_no_frame_says_so() {
        let none = Percentiles::of(&hdrhistogram::Histogram::<u64>::new(3).unwrap());
        let r = crate::fanout::Fanout {
            asked: 10,
            subscribers: 10,
            cut: None,
            runners: 5,
            frame_bytes: 0.0,
            frames: 0,
            delivered_per_s: 0.0,
            delay_ms: none.clone(),
            spread_ms: none,
            missed: 0,
            lag_snapshots: 0,
            edge_us_per_frame: 0.0,
            bytes_per_idle: 9000.0,
            bytes_per_subscriber: 10000.0,
            edge_peak_rss: 1 << 20,
        };
        let table = fanout_table(&[r]);
        let row = table.lines().nth(2).unwrap();
        assert_eq!(row.matches("none measured").count(), 5, "{row}");
        assert!(!row.contains(" 0 ms") && !row.contains("| 0.0 |"), "{row}");
    }
}
