//! `pace-bench`: measures pace from outside. See the crate docs.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use pace_benchmarking::latency::Setup;
use pace_benchmarking::suite;
use pace_benchmarking::workload::Source;

/// Measures pace through a real Kafka broker, as its users see it.
#[derive(Parser, Debug)]
#[command(name = "pace-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// A comma-separated list of numbers.
fn list(s: &str) -> Result<Vec<usize>, String> {
    s.split(',')
        .map(|v| v.trim().parse().map_err(|e| format!("{v:?}: {e}")))
        .collect()
}

/// What is measured, through which broker, and where the report goes.
#[derive(clap::Args, Debug)]
struct Target {
    /// Kafka bootstrap servers.
    #[arg(long, env = "PACE_BROKERS")]
    brokers: String,
    /// The `pace` binary to measure (a release build).
    #[arg(long, default_value = "target/release/pace")]
    pace: PathBuf,
    /// Where the report goes.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The standard suite: standings throughput per worker count, the
    /// consume ceiling, a naive baseline, memory per runner, latency at
    /// fixed loads with spectators, fan-out to N subscribers and the edge's
    /// memory per connection.
    /// Writes report.json, report.md and latency.svg to --out and prints
    /// the table.
    Suite {
        #[command(flatten)]
        target: Target,
        /// Runners in the throughput race.
        #[arg(long, default_value_t = 2000)]
        runners: usize,
        /// Seconds of that race (one point per runner per second): 3M points,
        /// a few seconds' work, so that start-up does not dominate.
        #[arg(long, default_value_t = 1500)]
        seconds: usize,
        /// Worker counts to sweep.
        #[arg(long, default_value = "1,2")]
        workers: String,
        /// Points the naive baseline reads.
        #[arg(long, default_value_t = 100_000)]
        naive_points: usize,
        /// Offered loads of the latency runs, points/s.
        #[arg(long, default_value = "10000,25000,50000")]
        loads: String,
        /// Races each offered load is spread over.
        #[arg(long, default_value_t = 10)]
        races: usize,
        /// Spectators in the latency runs, each following one runner.
        #[arg(long, default_value_t = 1000)]
        spectators: usize,
        /// One more latency run at this offered load, 0 for none…
        #[arg(long, default_value_t = 100_000)]
        big_load: usize,
        /// …with these many spectators: half watch a race's top-20 window
        /// (protocol v2), half follow one runner.
        #[arg(long, default_value_t = 10_000)]
        big_spectators: usize,
        /// Workers in the latency runs.
        #[arg(long, default_value_t = 2)]
        latency_workers: usize,
        /// The pipeline's epoch in the latency runs, milliseconds.
        #[arg(long, default_value_t = 50)]
        tick_ms: u64,
        /// Seconds of warm-up before each latency measurement.
        #[arg(long, default_value_t = 5)]
        warmup: u64,
        /// Seconds each latency run measures.
        #[arg(long, default_value_t = 15)]
        measure: u64,
        /// Run the latency runs' pipeline without `--operator-seconds`: no
        /// breakdown of its time by stage, and none of the few percent of
        /// CPU that counting costs.
        #[arg(long)]
        no_breakdown: bool,
        /// Subscriber counts of the fan-out runs, which also give the edge's
        /// memory per idle and per subscribed connection (each held to the
        /// descriptor limit, and saying so).
        #[arg(long, default_value = "1000,5000,10000,50000")]
        fanout: String,
        /// Recorded race days replayed as fast as possible with each worker
        /// count, comma-separated (`sailgp:DIR`, `f1:DIR`); empty for none.
        #[arg(
            long,
            default_value = "sailgp:../shared/data/sailgp-auckland-2025,f1:../shared/data/f1-laps-2020"
        )]
        recorded: String,
    },
    /// Restart time and peak RSS: preloads one generated race of --runners
    /// × --seconds (one point per runner per second), then starts `pace
    /// pipeline` on it with each worker count twice, as after a crash: with
    /// no snapshot, then from the snapshots the first run wrote; with more
    /// than one worker count (`--workers 1,2`), each count also starts from
    /// the snapshots of every other (an operator changing the worker count).
    /// Times each until the standings show every runner's last point.
    /// Prints a table and writes restart.json to --out.
    Restart {
        #[command(flatten)]
        target: Target,
        /// Runners in the race.
        #[arg(long, default_value_t = 10_000)]
        runners: usize,
        /// Seconds of race.
        #[arg(long, default_value_t = 3600)]
        seconds: usize,
        /// Worker counts to sweep.
        #[arg(long, default_value = "2")]
        workers: String,
        /// How often the pipeline snapshots its state, milliseconds.
        #[arg(long, default_value_t = 30_000)]
        snapshot_every_ms: u64,
    },
    /// Replays one race day (recorded, or generated) at a speed, with each
    /// worker count, while spectators follow its participants; prints a
    /// table and writes replay.json to --out.
    Replay {
        #[command(flatten)]
        target: Target,
        /// `sailgp:DIR`, `f1:DIR`, `boston:FILE` or `generated:RACESxRUNNERSxSECONDS`.
        #[arg(long, value_parser = Source::parse)]
        race: Source,
        /// Recorded seconds per wall second; 0 = as fast as the broker takes them.
        #[arg(long, default_value_t = 0.0)]
        speed: f64,
        /// Worker counts to sweep.
        #[arg(long, default_value = "1,2")]
        workers: String,
        /// Spectators, each following one participant.
        #[arg(long, default_value_t = 1000)]
        spectators: usize,
        /// The pipeline's epoch, milliseconds.
        #[arg(long, default_value_t = 50)]
        tick_ms: u64,
    },
    /// Fan-out: one race's changes to N subscribers of its standings on
    /// one edge, for each N; frames delivered per second, produce→frame
    /// delay, the fan-out spread (first subscriber's receipt to the last's),
    /// edge CPU per frame and memory per subscriber. Prints a table and
    /// writes fanout.json to --out.
    Fanout {
        #[command(flatten)]
        target: Target,
        /// Subscriber counts to sweep.
        #[arg(long, default_value = "1000,5000,10000")]
        subscribers: String,
        /// Runners in the race: all move once a second, in one burst.
        #[arg(long, default_value_t = pace_benchmarking::fanout::RUNNERS)]
        runners: usize,
        /// Workers of the pipeline.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Seconds of warm-up before each measurement.
        #[arg(long, default_value_t = 5)]
        warmup: u64,
        /// Seconds measured.
        #[arg(long, default_value_t = 15)]
        measure: u64,
        /// The pipeline's epoch, milliseconds.
        #[arg(long, default_value_t = 50)]
        tick_ms: u64,
    },
}

/// Comma-separated race days.
fn sources(s: &str) -> anyhow::Result<Vec<Source>> {
    s.split(',')
        .filter(|v| !v.trim().is_empty())
        .map(|v| Source::parse(v.trim()).map_err(|e| anyhow::anyhow!("--recorded {e}")))
        .collect()
}

/// Writes `runs` as JSON to `out/file` and prints `table` and where it went.
fn written(
    out: &std::path::Path,
    file: &str,
    runs: &impl serde::Serialize,
    table: &str,
) -> anyhow::Result<()> {
    std::fs::write(out.join(file), serde_json::to_string_pretty(runs)?)?;
    #[allow(clippy::print_stdout)]
    {
        println!("{table}");
        println!("written: {}/{file}", out.display());
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Suite {
            target: Target { brokers, pace, out },
            runners,
            seconds,
            workers,
            naive_points,
            loads,
            races,
            spectators,
            big_load,
            big_spectators,
            latency_workers,
            tick_ms,
            warmup,
            measure,
            no_breakdown,
            fanout,
            recorded,
        } => {
            let report = suite::run(&suite::Options {
                pace,
                brokers,
                out: out.clone(),
                runners,
                seconds,
                workers: list(&workers).map_err(|e| anyhow::anyhow!("--workers {e}"))?,
                naive_points,
                loads: list(&loads).map_err(|e| anyhow::anyhow!("--loads {e}"))?,
                latency_races: races,
                spectators,
                big_load,
                big_spectators,
                latency_workers,
                tick_ms,
                warmup_s: warmup,
                measure_s: measure,
                breakdown: !no_breakdown,
                fanout: list(&fanout).map_err(|e| anyhow::anyhow!("--fanout {e}"))?,
                recorded: sources(&recorded)?,
            })?;
            #[allow(clippy::print_stdout)]
            {
                println!("{}", report.markdown());
                println!(
                    "written: {0}/report.json, {0}/report.md, {0}/latency.svg",
                    out.display()
                );
            }
        }
        Command::Restart {
            target: Target { brokers, pace, out },
            runners,
            seconds,
            workers,
            snapshot_every_ms,
        } => {
            let workers = list(&workers).map_err(|e| anyhow::anyhow!("--workers {e}"))?;
            let target = suite::Target {
                pace: &pace,
                brokers: &brokers,
                out: &out,
            };
            let runs = suite::restart(target, (runners, seconds), &workers, snapshot_every_ms)?;
            let table = pace_benchmarking::report::restart_table(&runs);
            written(&out, "restart.json", &runs, &table)?;
        }
        Command::Replay {
            target: Target { brokers, pace, out },
            race,
            speed,
            workers,
            spectators,
            tick_ms,
        } => {
            anyhow::ensure!(
                speed >= 0.0 && speed.is_finite(),
                "--speed must be 0 or more"
            );
            std::fs::create_dir_all(&out)?;
            let workers = list(&workers).map_err(|e| anyhow::anyhow!("--workers {e}"))?;
            let runs = workers
                .iter()
                .map(|&w| {
                    let setup = Setup::processes(&pace, &out, &brokers, w, spectators, tick_ms);
                    suite::replay_on(&setup, &race, speed)
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let table = pace_benchmarking::report::replay_table(&runs);
            written(&out, "replay.json", &runs, &table)?;
        }
        Command::Fanout {
            target: Target { brokers, pace, out },
            subscribers,
            runners,
            workers,
            warmup,
            measure,
            tick_ms,
        } => {
            std::fs::create_dir_all(&out)?;
            let sizes = list(&subscribers).map_err(|e| anyhow::anyhow!("--subscribers {e}"))?;
            let mut setup = Setup::processes(&pace, &out, &brokers, workers, 0, tick_ms);
            (setup.warmup_s, setup.measure_s) = (warmup, measure);
            let o = pace_benchmarking::fanout::Options { setup, runners };
            let runs = sizes
                .iter()
                .map(|&n| pace_benchmarking::fanout::run(&o, n))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let table = pace_benchmarking::report::fanout_table(&runs);
            written(&out, "fanout.json", &runs, &table)?;
        }
    }
    Ok(())
}
