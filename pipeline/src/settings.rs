//! Every `pace` setting, declared once: each group is a clap [`Args`]
//! struct, documented where it is declared, which the subcommands that use
//! it flatten (so each `--help` shows only what that command uses), and
//! which turns itself into the configuration of the part it sets.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use ingest::KafkaConfig;

use crate::runtime::PipelineConfig;

/// Where Kafka is, and how pace names and makes its topics.
#[derive(Args, Clone, Debug)]
#[group(skip)]
pub struct Kafka {
    /// Kafka bootstrap servers (host:port,...). `pace run` starts an embedded
    /// in-memory broker when this is absent; every other command needs it.
    #[arg(long, env = "PACE_BROKERS")]
    pub brokers: Option<String>,
    /// Prefix for every topic name (e.g. `staging.` gives `staging.pace.gps`).
    #[arg(long, env = "PACE_TOPIC_PREFIX", default_value = "")]
    pub topic_prefix: String,
}

/// How a command that creates the topics makes them.
#[derive(Args, Clone, Debug)]
#[group(skip)]
pub struct Topics {
    /// Partitions of each topic pace creates (existing topics are left alone).
    #[arg(long, env = "PACE_PARTITIONS", default_value_t = ingest::admin::DEFAULT_PARTITIONS, value_parser = clap::value_parser!(i32).range(1..=1024))]
    pub partitions: i32,
}

impl Topics {
    /// Creates those of `kafka`'s topics that do not exist yet.
    pub fn ensure(&self, rt: &tokio::runtime::Runtime, kafka: &KafkaConfig) -> anyhow::Result<()> {
        use anyhow::Context;
        rt.block_on(ingest::admin::ensure_topics(kafka, self.partitions))
            .context("create topics")
    }
}

impl Kafka {
    /// The topics behind the prefix, on `brokers`.
    pub fn on(&self, brokers: &str) -> KafkaConfig {
        KafkaConfig::new(brokers).with_topic_prefix(&self.topic_prefix)
    }

    /// The configuration of `--brokers`, which every command but `pace run`
    /// needs.
    pub fn required(&self) -> anyhow::Result<KafkaConfig> {
        match &self.brokers {
            Some(b) => Ok(self.on(b)),
            None => bail!("--brokers (or PACE_BROKERS) is needed: only `pace run` embeds a broker"),
        }
    }
}

/// Where a process serves HTTP.
#[derive(Args, Clone, Debug)]
#[group(skip)]
pub struct Listen {
    /// Address the HTTP/WebSocket edge listens on; `pace pipeline` and
    /// `pace archive run` serve only /metrics and /healthz there (port 0
    /// picks a free port).
    #[arg(long, env = "PACE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
}

/// Where state and the archive go.
#[derive(Args, Clone, Debug)]
#[group(skip)]
pub struct Data {
    /// Directory for the Parquet archive and state.
    #[arg(long, env = "PACE_DATA_DIR", default_value = "./pace-data")]
    pub data_dir: PathBuf,
}

/// The dataflow pipeline.
#[derive(Args, Clone, Debug)]
#[group(skip)]
pub struct Pipeline {
    /// Dataflow worker threads in this process.
    #[arg(long, env = "PACE_WORKERS", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,
    /// The dataflow's epoch, milliseconds: records read within one epoch
    /// change the views together. Shorter epochs cut latency, longer ones
    /// batch more per view change.
    #[arg(long, env = "PACE_TICK_MS", default_value_t = TICK_MS, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub tick_ms: u64,
    /// How often the pipeline writes its jobs' state and input offsets under
    /// --data-dir/snapshots, milliseconds; a restart resumes from the latest
    /// instead of rebuilding from the start of retention. 0: never.
    #[arg(long, env = "PACE_SNAPSHOT_EVERY_MS", default_value_t = SNAPSHOT_EVERY_MS, value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
    pub snapshot_every_ms: u64,
    /// Do not record epoch bindings on pace.bindings nor follow recorded
    /// ones: epochs are then cut by the wall clock alone, so a restart or a
    /// replay numbers changes differently and spectators get snapshots
    /// after a restart. For measuring what the bindings cost (`make bench`).
    #[arg(long, env = "PACE_NO_EPOCH_BINDINGS")]
    pub no_epoch_bindings: bool,
    /// Count the workers' time per dataflow operator
    /// (`pace_pipeline_operator_seconds_total{operator}`): where an epoch's
    /// time goes, stage by stage. It costs about a tenth more pipeline CPU,
    /// so it is off unless asked for.
    #[arg(long, env = "PACE_OPERATOR_SECONDS")]
    pub operator_seconds: bool,
}

impl Pipeline {
    /// The pipeline's configuration on `kafka`, its state under `data`.
    pub fn config(&self, kafka: KafkaConfig, data: &Data) -> PipelineConfig {
        let mut config =
            PipelineConfig::new(kafka, usize::from(self.workers), data.data_dir.clone());
        config.tick = Duration::from_millis(self.tick_ms);
        config.snapshot_every =
            (self.snapshot_every_ms > 0).then(|| Duration::from_millis(self.snapshot_every_ms));
        config.epoch_bindings = !self.no_epoch_bindings;
        config.operator_seconds = self.operator_seconds;
        config
    }
}

/// The Parquet archiver.
#[derive(Args, Clone, Debug)]
#[group(skip)]
pub struct Archive {
    /// The archiver writes a topic partition's buffered rows to a file at
    /// least this often (milliseconds): how soon data is queryable.
    #[arg(long, env = "PACE_ARCHIVE_ROLL_MS", default_value_t = ARCHIVE_ROLL_MS, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub archive_roll_ms: u64,
}

impl Archive {
    /// The archiver's configuration on `kafka`, under `data`.
    pub fn config(&self, kafka: KafkaConfig, data: &Data) -> sinks::archive::ArchiveConfig {
        let mut config = sinks::archive::ArchiveConfig::new(kafka, data.data_dir.clone());
        config.max_age = Duration::from_millis(self.archive_roll_ms);
        config
    }
}

/// The HTTP/WebSocket edge: who may post, and the bounds it keeps.
#[derive(Args, Clone, Debug)]
#[group(skip)]
pub struct Edge {
    /// The secret user tokens are signed with (see `pace token`); without
    /// one the edge serves reads and takes no posts.
    #[arg(long, env = "PACE_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,
    /// An outside identity provider's keys (OIDC): its JWK set, a file or
    /// an http(s) URL (the provider's `jwks_uri`). Its RS256/ES256 tokens
    /// are taken beside pace's own. A file is read again when it changes;
    /// a URL is fetched again every 5 minutes, and when a token names a
    /// key the set lacks (at most every 10 s): keys rotate without a
    /// restart. Needs --jwt-issuer and --jwt-audience.
    #[arg(long, env = "PACE_JWKS", value_name = "FILE|URL", requires_all = ["jwt_issuer", "jwt_audience"])]
    pub jwks: Option<String>,
    /// The `iss` the outside provider's tokens carry.
    #[arg(long, env = "PACE_JWT_ISSUER", requires = "jwks")]
    pub jwt_issuer: Option<String>,
    /// The `aud` the outside provider's tokens must name.
    #[arg(long, env = "PACE_JWT_AUDIENCE", requires = "jwks")]
    pub jwt_audience: Option<String>,
    /// An origin (e.g. `https://race.example.org`) whose pages may use the
    /// edge besides its own; repeat or comma-separate; `*` allows any.
    #[arg(
        long = "allowed-origin",
        env = "PACE_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,
    /// Most client connections (HTTP and WebSocket) the edge holds; fewer if
    /// the descriptor limit (`ulimit -n`) leaves less after a reserve for
    /// Kafka and files. When all are taken, the longest-idle HTTP connection
    /// is closed to make room; if none is idle, the newcomer gets 503.
    #[arg(long, env = "PACE_MAX_CONNECTIONS", default_value_t = ws_edge::EdgeLimits::default().max_connections)]
    pub max_connections: usize,
    /// Most connections from one client address (an IPv6 /64 counts as one);
    /// more get 503. 0: no such limit (an edge behind a proxy that does not
    /// pass the client's address sees one address).
    #[arg(long, env = "PACE_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = ws_edge::EdgeLimits::default().max_per_address)]
    pub max_connections_per_address: usize,
    /// HTTP requests per second one client address may make, sustained
    /// (bursts of 2.5 times that); more get 429.
    #[arg(long, env = "PACE_REQUESTS_PER_ADDRESS", default_value_t = ws_edge::EdgeLimits::default().requests.per_second, value_parser = positive)]
    pub requests_per_address: f64,
    /// A proxy (load balancer) in front of the edge, by address or CIDR
    /// range (`10.0.0.0/8`); repeat or comma-separate. A request from one
    /// counts against the client its `X-Forwarded-For` names (the
    /// rightmost address there that is not a trusted proxy), for every
    /// per-address budget; its connections are not capped per address.
    #[arg(
        long = "trusted-proxy",
        env = "PACE_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "CIDR",
        value_parser = cidr
    )]
    pub trusted_proxies: Vec<String>,
}

impl Edge {
    /// The edge's configuration on `kafka`, serving on `listen`.
    pub fn config(&self, listen: &Listen, kafka: KafkaConfig) -> ws_edge::EdgeConfig {
        let mut config = ws_edge::EdgeConfig::new(listen.listen, kafka);
        config.token_secret.clone_from(&self.token_secret);
        config.issuer = match (&self.jwks, &self.jwt_issuer, &self.jwt_audience) {
            (Some(jwks), Some(issuer), Some(audience)) => Some(ws_edge::issuer::IssuerConfig {
                jwks: ws_edge::issuer::JwksSource::parse(jwks),
                issuer: issuer.clone(),
                audience: audience.clone(),
            }),
            _ => None,
        };
        config.allowed_origins.clone_from(&self.allowed_origins);
        config.limits.max_connections = self.max_connections;
        config.limits.max_per_address = self.max_connections_per_address;
        config.limits.trusted_proxies = ws_edge::transport::proxies::TrustedProxies::parse(
            self.trusted_proxies.iter().map(String::as_str),
        )
        .expect("each range was parsed by clap");
        config.limits.requests = ws_edge::transport::bucket::Rate::new(
            self.requests_per_address * 2.5,
            self.requests_per_address,
        );
        config
    }
}

/// What a long-running process with state (`pace pipeline`, `pace archive
/// run`) is given: Kafka, how to make the topics, where it serves
/// `/metrics`, and where its state goes.
#[derive(Args, Clone, Debug)]
#[group(skip)]
pub struct Service {
    /// Kafka and the topics.
    #[command(flatten)]
    pub kafka: Kafka,
    /// How the topics are made.
    #[command(flatten)]
    pub topics: Topics,
    /// Where it serves.
    #[command(flatten)]
    pub listen: Listen,
    /// Where its state goes.
    #[command(flatten)]
    pub data: Data,
}

/// Everything in one process (`pace run`): a service that also runs the
/// pipeline, the archiver and the edge.
#[derive(Args, Clone, Debug)]
#[group(skip)]
pub struct All {
    /// Kafka, the topics, where it serves and where its state goes.
    #[command(flatten)]
    pub service: Service,
    /// The pipeline.
    #[command(flatten)]
    pub pipeline: Pipeline,
    /// The archiver.
    #[command(flatten)]
    pub archive: Archive,
    /// The edge.
    #[command(flatten)]
    pub edge: Edge,
}

/// The defaults of the settings in milliseconds, from where each is defined.
const ARCHIVE_ROLL_MS: u64 = sinks::archive::ArchiveConfig::DEFAULT_MAX_AGE.as_millis() as u64;
const TICK_MS: u64 = PipelineConfig::DEFAULT_TICK.as_millis() as u64;
const SNAPSHOT_EVERY_MS: u64 = PipelineConfig::DEFAULT_SNAPSHOT_EVERY.as_millis() as u64;

/// An address or CIDR range of `--trusted-proxy`.
fn cidr(s: &str) -> Result<String, String> {
    ws_edge::transport::proxies::TrustedProxies::parse([s]).map(|_| s.trim().to_owned())
}

/// A finite number above 0.
fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number above 0")),
    }
}
