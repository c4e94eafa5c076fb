//! `pace`: the command line. Parses flags and calls into [`pace_pipeline::app`];
//! no logic of its own.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use pace_pipeline::app::{self, Common, InputTopic, Recorded, Replay};
use pace_pipeline::runtime::PipelineConfig;

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
}

#[derive(Args, Debug, Clone)]
struct CommonArgs {
    /// Kafka bootstrap servers (host:port,...). `pace run` starts an embedded
    /// in-memory broker when this is absent; every other command needs it.
    #[arg(long, env = "PACE_BROKERS")]
    brokers: Option<String>,
    /// Address the HTTP/WebSocket edge listens on; `pace pipeline` and
    /// `pace archive run` serve only /metrics and /healthz there (port 0
    /// picks a free port).
    #[arg(long, env = "PACE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Dataflow worker threads in this process.
    #[arg(long, env = "PACE_WORKERS", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: u16,
    /// Directory for the Parquet archive and state.
    #[arg(long, env = "PACE_DATA_DIR", default_value = "./pace-data")]
    data_dir: PathBuf,
    /// Prefix for every topic name (e.g. `staging.` gives `staging.pace.gps`).
    #[arg(long, env = "PACE_TOPIC_PREFIX", default_value = "")]
    topic_prefix: String,
    /// Partitions of each topic pace creates (existing topics are left alone).
    #[arg(long, env = "PACE_PARTITIONS", default_value_t = 4, value_parser = clap::value_parser!(i32).range(1..=1024))]
    partitions: i32,
    /// The secret user tokens are signed with (see `pace token`); without
    /// one the edge serves reads and takes no posts.
    #[arg(long, env = "PACE_TOKEN_SECRET", hide_env_values = true)]
    token_secret: Option<String>,
    /// An origin (e.g. `https://race.example.org`) whose pages may use the
    /// edge besides its own; repeat or comma-separate; `*` allows any.
    #[arg(
        long = "allowed-origin",
        env = "PACE_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    allowed_origins: Vec<String>,
    /// Most client connections (HTTP and WebSocket) the edge holds; fewer if
    /// the descriptor limit (`ulimit -n`) leaves less after a reserve for
    /// Kafka and files. When all are taken, the longest-idle HTTP connection
    /// is closed to make room; if none is idle, the newcomer gets 503.
    #[arg(long, env = "PACE_MAX_CONNECTIONS", default_value_t = ws_edge::EdgeLimits::default().max_connections)]
    max_connections: usize,
    /// Most connections from one client address (an IPv6 /64 counts as one);
    /// more get 503. 0: no such limit (an edge behind a proxy that does not
    /// pass the client's address sees one address).
    #[arg(long, env = "PACE_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = ws_edge::EdgeLimits::default().max_per_address)]
    max_connections_per_address: usize,
    /// HTTP requests per second one client address may make, sustained
    /// (bursts of 2.5 times that); more get 429.
    #[arg(long, env = "PACE_REQUESTS_PER_ADDRESS", default_value_t = ws_edge::EdgeLimits::default().requests.per_second, value_parser = positive)]
    requests_per_address: f64,
    /// The archiver writes a topic partition's buffered rows to a file at
    /// least this often (milliseconds): how soon data is queryable.
    #[arg(long, env = "PACE_ARCHIVE_ROLL_MS", default_value_t = ARCHIVE_ROLL_MS, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    archive_roll_ms: u64,
    /// The dataflow's epoch, milliseconds: records read within one epoch
    /// change the views together. Shorter epochs cut latency, longer ones
    /// batch more per view change.
    #[arg(long, env = "PACE_TICK_MS", default_value_t = TICK_MS, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    tick_ms: u64,
    /// How often the pipeline writes its jobs' state and input offsets under
    /// --data-dir/snapshots, milliseconds; a restart resumes from the latest
    /// instead of rebuilding from the start of retention. 0: never.
    #[arg(long, env = "PACE_SNAPSHOT_EVERY_MS", default_value_t = SNAPSHOT_EVERY_MS, value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
    snapshot_every_ms: u64,
    /// Do not record epoch bindings on pace.bindings nor follow recorded
    /// ones: epochs are then cut by the wall clock alone, so a restart or a
    /// replay numbers changes differently and spectators get snapshots
    /// after a restart. For measuring what the bindings cost (`make bench`).
    #[arg(long, env = "PACE_NO_EPOCH_BINDINGS")]
    no_epoch_bindings: bool,
}

/// The defaults of the flags in milliseconds, from where each is defined.
const ARCHIVE_ROLL_MS: u64 = sinks::archive::ArchiveConfig::DEFAULT_MAX_AGE.as_millis() as u64;
const TICK_MS: u64 = PipelineConfig::DEFAULT_TICK.as_millis() as u64;
const SNAPSHOT_EVERY_MS: u64 = PipelineConfig::DEFAULT_SNAPSHOT_EVERY.as_millis() as u64;

impl From<CommonArgs> for Common {
    fn from(a: CommonArgs) -> Self {
        Common {
            brokers: a.brokers,
            topic_prefix: a.topic_prefix,
            listen: a.listen,
            workers: usize::from(a.workers),
            data_dir: a.data_dir,
            partitions: a.partitions,
            token_secret: a.token_secret,
            allowed_origins: a.allowed_origins,
            max_connections: a.max_connections,
            max_connections_per_address: a.max_connections_per_address,
            requests_per_address: a.requests_per_address,
            archive_roll: std::time::Duration::from_millis(a.archive_roll_ms),
            tick: std::time::Duration::from_millis(a.tick_ms),
            snapshot_every: (a.snapshot_every_ms > 0)
                .then(|| std::time::Duration::from_millis(a.snapshot_every_ms)),
            epoch_bindings: !a.no_epoch_bindings,
        }
    }
}

/// A finite number above 0.
fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number above 0")),
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Everything in one process: broker (embedded unless --brokers), a
    /// built-in generated race, the pipeline and the edge.
    Run {
        #[command(flatten)]
        common: CommonArgs,
        /// Runners in the built-in generated race (0: no generated race).
        #[arg(long, env = "PACE_DEMO_PARTICIPANTS", default_value_t = 300)]
        demo_participants: usize,
        /// Replay a recorded race day or chat instead of the generated race:
        /// `sailgp:DIR`, `f1:DIR` or `irc:FILE` (into room `irc`).
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
        common: CommonArgs,
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
        common: CommonArgs,
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
        common: CommonArgs,
        /// What to replay: `jsonl` (a JSON-lines file of one record type),
        /// `demo` (a generated race, start to finish), `sailgp` (boat logs and
        /// race XML), `f1` (lap CSVs, Ergast schema) or `irc` (a channel log,
        /// into room `irc`).
        #[arg(long, env = "PACE_REPLAY_DATASET", value_parser = ["jsonl", "demo", "sailgp", "f1", "irc"])]
        dataset: String,
        /// The file (`jsonl`, `irc`) or directory (`sailgp`, `f1`) to replay.
        #[arg(long, env = "PACE_REPLAY_PATH", required_if_eq_any([("dataset", "jsonl"), ("dataset", "sailgp"), ("dataset", "f1"), ("dataset", "irc")]))]
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
        common: CommonArgs,
    },
    /// Check the archive against the topics: every record exactly once.
    /// Exits 1 if there are gaps or duplicates.
    Verify {
        #[command(flatten)]
        common: CommonArgs,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Merge the small files of closed date partitions (atomic swap). Safe
    /// while the archiver runs.
    Compact {
        #[command(flatten)]
        common: CommonArgs,
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
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log))
        .with_target(false)
        .with_writer(std::io::stderr)
        // Colours for a terminal only, not for a log file or a collector.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Run {
            common,
            demo_participants,
            replay,
            speed,
        } => {
            if !(speed.is_finite() && speed >= 0.0) {
                Err(anyhow::anyhow!("--speed must be a finite number >= 0"))
            } else {
                app::run_all(common.into(), demo_participants, replay.map(|r| (r, speed)))
            }
        }
        Command::Pipeline {
            common,
            no_archive,
            processes,
            process,
            hosts,
        } => cluster(processes.into(), process.into(), hosts.as_deref())
            .and_then(|c| app::run_pipeline(common.into(), !no_archive, c)),
        Command::Archive { command } => match command {
            ArchiveCommand::Run { common } => app::run_archive(common.into()),
            ArchiveCommand::Verify { common, json } => {
                match app::verify_archive(common.into(), json) {
                    Ok(true) => Ok(()),
                    Ok(false) => return ExitCode::FAILURE,
                    Err(e) => Err(e),
                }
            }
            ArchiveCommand::Compact {
                common,
                dataset,
                before,
            } => app::compact_archive(
                common.into(),
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
        Command::Edge { common } => app::run_edge(common.into()),
        Command::Replay {
            common,
            dataset,
            path,
            topic,
            speed,
            participants,
            seed,
        } => {
            let replay = match (dataset.as_str(), path) {
                ("jsonl", Some(path)) => Replay::Jsonl { path, topic },
                ("sailgp", Some(path)) => Replay::Recorded(Recorded::SailGp(path)),
                ("f1", Some(path)) => Replay::Recorded(Recorded::F1(path)),
                ("irc", Some(path)) => Replay::Recorded(Recorded::Irc(path)),
                _ => Replay::Demo { participants, seed },
            };
            if !(speed.is_finite() && speed >= 0.0) {
                Err(anyhow::anyhow!("--speed must be a finite number >= 0"))
            } else {
                app::run_replay(common.into(), replay, speed).map(|_| ())
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
