//! `pace`: the command line. Parses flags and calls into [`pace_pipeline::app`];
//! no logic of its own.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pace_pipeline::app::{self, InputTopic, Recorded, Replay};
use pace_pipeline::settings::{self, Data, Kafka, Listen, Topics};

/// mimalloc, not glibc's malloc: the dataflow allocates and frees many small
/// rows per point (see the workspace Cargo.toml for the figure).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// pace: a real-time event platform. Kafka in, incremental dataflow views out,
/// served live over WebSocket and archived to Parquet.
#[derive(Parser, Debug)]
#[command(name = "pace", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter, e.g. `info` or `pace_ws_edge=debug,info`.
    #[arg(long, global = true, env = "PACE_LOG", default_value = "info")]
    log: String,
    /// Export spans over OTLP/HTTP to this endpoint (e.g.
    /// `http://collector:4318`): HTTP requests, WebSocket frames, Kafka
    /// produce and consume with the trace context in record headers, and
    /// task evaluation. None (or empty): no export.
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
}

impl Command {
    /// The `service.name` of its spans.
    fn service(&self) -> &'static str {
        match self {
            Command::Run { .. } => "pace",
            Command::Pipeline { .. } => "pace-pipeline",
            Command::Edge { .. } => "pace-edge",
            Command::Archive { .. } => "pace-archive",
            Command::Replay { .. } => "pace-replay",
            _ => "pace-cli",
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Everything in one process: broker (embedded unless --brokers), a
    /// built-in generated race, the pipeline and the edge.
    Run {
        #[command(flatten)]
        all: settings::All,
        /// Runners in the built-in generated race (0: no generated race).
        #[arg(long, env = "PACE_DEMO_PARTICIPANTS", default_value_t = 300)]
        demo_participants: usize,
        /// Runners in the built-in chip-timed road race, a 5 km timed by
        /// mats with a GPS tracker on one runner in four (0: none).
        #[arg(long, env = "PACE_DEMO_ROAD_RUNNERS", default_value_t = 200)]
        demo_road_runners: usize,
        /// Replay a recorded race day or chat instead of the generated race:
        /// `sailgp:DIR`, `f1:DIR`, `irc:FILE` (into room `irc`) or
        /// `boston:FILE` (marathon results, as mat reads).
        #[arg(long, env = "PACE_REPLAY", value_parser = Recorded::parse)]
        replay: Option<Recorded>,
        /// Replay speed for --replay (1 = real time, 0 = as fast as possible).
        #[arg(long, env = "PACE_REPLAY_SPEED", default_value_t = 1.0)]
        speed: f64,
    },
    /// The dataflow pipeline: reads the input topics, writes the view
    /// changelogs and the dead letters; and the archiver (unless --no-archive).
    /// Serves /metrics on --listen.
    Pipeline {
        #[command(flatten)]
        service: settings::Service,
        #[command(flatten)]
        pipeline: settings::Pipeline,
        #[command(flatten)]
        archive: settings::Archive,
        /// Do not run the archiver here (run `pace archive run` elsewhere).
        /// In a cluster only process 0 archives.
        #[arg(long)]
        no_archive: bool,
        /// Pipeline processes in the cluster (timely's cluster mode); each
        /// runs --workers workers, and the input partitions are spread over
        /// all of them.
        #[arg(long, env = "PACE_PROCESSES", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
        processes: u16,
        /// This process's index in the cluster, from 0.
        #[arg(long, env = "PACE_PROCESS", default_value_t = 0)]
        process: u16,
        /// The cluster's processes, one `host:port` a line, in process order
        /// (default: 127.0.0.1:2101, :2102, …). Every process gets the same file.
        #[arg(long, env = "PACE_HOSTS")]
        hosts: Option<PathBuf>,
    },
    /// The Parquet archive under --data-dir: run the archiver, verify the
    /// archive against the topics, compact closed days.
    Archive {
        #[command(subcommand)]
        command: ArchiveCommand,
    },
    /// The HTTP/WebSocket edge only: follows the view changelogs and serves them.
    Edge {
        #[command(flatten)]
        kafka: Kafka,
        #[command(flatten)]
        listen: Listen,
        #[command(flatten)]
        edge: settings::Edge,
    },
    /// Ask a pace process on this host whether it is up (`GET /healthz`
    /// on --listen's port): exit 0 if it answers 200 within 2 s, 1 if not.
    /// The container image's HEALTHCHECK.
    Healthz {
        #[command(flatten)]
        listen: Listen,
    },
    /// Print a token for a user, signed with the token secret.
    Token {
        /// The user the token names.
        #[arg(long)]
        user: String,
        /// How long it is valid, hours.
        #[arg(long, default_value_t = 24)]
        ttl_hours: u64,
        /// The secret tokens are signed with.
        #[arg(long, env = "PACE_TOKEN_SECRET", hide_env_values = true)]
        token_secret: String,
    },
    /// Produce recorded or generated input into Kafka.
    Replay {
        #[command(flatten)]
        kafka: Kafka,
        #[command(flatten)]
        topics: Topics,
        /// What to replay: `jsonl` (a JSON-lines file of one record type),
        /// `demo` (a generated race, start to finish), `sailgp` (boat logs and
        /// race XML), `f1` (lap CSVs, Ergast schema), `irc` (a channel log,
        /// into room `irc`) or `boston` (marathon results, as chip-timing
        /// mat reads).
        #[arg(long, env = "PACE_REPLAY_DATASET", value_parser = ["jsonl", "demo", "sailgp", "f1", "irc", "boston"])]
        dataset: String,
        /// The file (`jsonl`, `irc`, `boston`) or directory (`sailgp`, `f1`) to replay.
        #[arg(long, env = "PACE_REPLAY_PATH", required_if_eq_any([("dataset", "jsonl"), ("dataset", "sailgp"), ("dataset", "f1"), ("dataset", "irc"), ("dataset", "boston")]))]
        path: Option<PathBuf>,
        /// The input topic, and so the record type, of a `jsonl` file.
        #[arg(long, value_enum, default_value = "gps")]
        topic: InputTopic,
        /// Replay speed: 1 = real time, 10 = ten times faster, 0 = as fast as possible.
        #[arg(long, env = "PACE_REPLAY_SPEED", default_value_t = 1.0)]
        speed: f64,
        /// Participants of a `demo` race.
        #[arg(long, default_value_t = 300)]
        participants: usize,
        /// Seed of a `demo` race.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Subcommand, Debug)]
enum ArchiveCommand {
    /// Archive every topic to Parquet until stopped (SIGINT/SIGTERM).
    Run {
        #[command(flatten)]
        service: settings::Service,
        #[command(flatten)]
        archive: settings::Archive,
    },
    /// Check the archive against the topics: every record exactly once.
    /// Exits 1 if there are gaps or duplicates.
    Verify {
        #[command(flatten)]
        kafka: Kafka,
        #[command(flatten)]
        data: Data,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Merge the small files of closed date partitions (atomic swap). Safe
    /// while the archiver runs.
    Compact {
        #[command(flatten)]
        data: Data,
        /// Only this dataset (`gps`, `standings`, …).
        #[arg(long)]
        dataset: Option<String>,
        /// Only date partitions before this day, YYYY-MM-DD (default: today, UTC).
        #[arg(long)]
        before: Option<chrono::NaiveDate>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Flushes the spans still batched when `main` returns.
    let _traces = match observability::traces::init(
        &cli.log,
        cli.otlp_endpoint.as_deref().filter(|e| !e.is_empty()),
        cli.command.service(),
    ) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("pace: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Run {
            all,
            demo_participants,
            demo_road_runners,
            replay,
            speed,
        } => {
            if !(speed.is_finite() && speed >= 0.0) {
                Err(anyhow::anyhow!("--speed must be a finite number >= 0"))
            } else {
                let demo = app::Demo {
                    participants: demo_participants,
                    road_runners: demo_road_runners,
                };
                app::run_all(&all, demo, replay.map(|r| (r, speed)))
            }
        }
        Command::Pipeline {
            service,
            pipeline,
            archive,
            no_archive,
            processes,
            process,
            hosts,
        } => cluster(processes.into(), process.into(), hosts.as_deref()).and_then(|c| {
            let archive = (!no_archive).then_some(&archive);
            app::run_pipeline(&service, &pipeline, archive, c)
        }),
        Command::Archive { command } => match command {
            ArchiveCommand::Run { service, archive } => app::run_archive(&service, &archive),
            ArchiveCommand::Verify { kafka, data, json } => {
                match app::verify_archive(&kafka, &data, json) {
                    Ok(true) => Ok(()),
                    Ok(false) => return ExitCode::FAILURE,
                    Err(e) => Err(e),
                }
            }
            ArchiveCommand::Compact {
                data,
                dataset,
                before,
            } => app::compact_archive(
                &data,
                sinks::compact::CompactOptions {
                    dataset,
                    before: before.unwrap_or_else(|| chrono::Utc::now().date_naive()),
                },
            ),
        },
        Command::Token {
            user,
            ttl_hours,
            token_secret,
        } => app::issue_token(&token_secret, &user, ttl_hours * 3600).map(|t| {
            #[allow(clippy::print_stdout)]
            {
                println!("{t}");
            }
        }),
        Command::Edge {
            kafka,
            listen,
            edge,
        } => app::run_edge(&kafka, &listen, &edge),
        Command::Healthz { listen } => app::healthz(&listen),
        Command::Replay {
            kafka,
            topics,
            dataset,
            path,
            topic,
            speed,
            participants,
            seed,
        } => {
            let replay = match (dataset.as_str(), path) {
                ("jsonl", Some(path)) => Replay::Jsonl { path, topic },
                (kind, Some(path)) => match Recorded::of(kind, path) {
                    Some(recorded) => Replay::Recorded(recorded),
                    None => Replay::Demo { participants, seed },
                },
                _ => Replay::Demo { participants, seed },
            };
            if !(speed.is_finite() && speed >= 0.0) {
                Err(anyhow::anyhow!("--speed must be a finite number >= 0"))
            } else {
                app::run_replay((&kafka, &topics), replay, speed).map(|_| ())
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The cluster `--processes`, `--process` and `--hosts` describe.
fn cluster(
    processes: usize,
    process: usize,
    hosts: Option<&std::path::Path>,
) -> anyhow::Result<Option<pace_pipeline::runtime::Cluster>> {
    let text = hosts
        .map(|p| {
            std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("--hosts {}: {e}", p.display()))
        })
        .transpose()?;
    pace_pipeline::runtime::Cluster::new(processes, process, text.as_deref())
        .map_err(|e| anyhow::anyhow!(e))
}
