//! The worker runtime: timely workers reading Kafka, running the jobs of the
//! registry its [`PipelineConfig`] carries and writing their changelogs.
//! The runtime knows no job: the registry (`jobs/mod.rs`) gives it the
//! list, through [`PipelineConfig::new`], which is written beside it.
//!
//! Time is the epoch, Unix milliseconds rounded down to [`PipelineConfig::tick`].
//! Each source stamps what it reads with the current epoch, and starts a new
//! one each tick while the dataflow keeps up; while an older epoch it read is
//! still unfinished it keeps the current one open, so that a dataflow that
//! falls behind works in bigger epochs rather than a queue of small ones
//! (see `source.rs`). A sink keeps a
//! capability for an epoch until what it wrote for that epoch is durable
//! (acknowledged by the broker), so the probe at the
//! end of the dataflow passes an epoch only when every sink has made it
//! durable; only then does the source commit the offsets the epoch read.
//!
//! Workers park while idle: a source is woken by the Kafka client when records
//! arrive, by a timer every tick while data is in flight anywhere (to advance
//! its epoch so the data can complete), and once a second while idle (a
//! wake-up the client never sent then costs a second, not the records).
//! There is no busy loop.
//!
//! In a cluster ([`Cluster`], timely's cluster mode) every process runs this
//! with its own workers; worker indices, and so the partitions each reads,
//! are global. Records cross processes in bincode, so what the dataflow
//! carries must survive it (see `schemas::Packed`).
//!
//! Every [`PipelineConfig::snapshot_every`] each job's state, what its
//! changelog encoder keeps and the offsets they reflect are written under
//! the data directory ([`crate::snapshot`]); a start resumes from the latest
//! complete snapshot, or rebuilds from the start of retention without one.
//! The consumer group's committed offsets record durable progress (for lag
//! monitoring) but are not where reading resumes.
//!
//! The first run cuts epochs by the wall clock; each source records the
//! offsets every epoch covered on `pace.bindings` before the epoch can
//! complete, and every later run over those offsets (a restart, a replay,
//! another tick or worker layout) cuts them into the same epochs, so the
//! same offsets give the same views and the same sequence numbers
//! ([`bindings`]).
//!
//! Files: [`worker`] (the worker loop), [`inputs`] (what a job gets, and the
//! wiring of the registry), [`source`] (the Kafka source), [`bindings`]
//! (the recorded epochs it follows), [`sink`] (the
//! changelog and dead-letter sinks), [`cluster`], [`shared`] (what the
//! workers of a process share), [`error`].

mod bindings;
mod cluster;
mod error;
mod inputs;
mod profile;
mod shared;
mod sink;
mod source;
mod worker;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use ingest::KafkaConfig;
use schemas::Timestamp;

pub use crate::route::hash;
pub use cluster::{Cluster, ClusterError, EXIT_PEER_LOST};
pub use error::{PipelineError, WorkerError};
pub use inputs::{Dataflow, Inputs, Wire, wire};

/// Dataflow time: the epoch, Unix milliseconds.
pub type Time = u64;

/// How the pipeline runs.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Brokers and topics.
    pub kafka: KafkaConfig,
    /// Timely worker threads in this process.
    pub workers: usize,
    /// State goes under here.
    pub data_dir: PathBuf,
    /// Consumer group under which durable progress is committed.
    pub group: String,
    /// Epoch length: the batching interval of the dataflow.
    pub tick: Duration,
    /// This process's place in a cluster of pipeline processes; `None`
    /// for a process on its own.
    pub cluster: Option<Cluster>,
    /// The jobs, in the order each worker builds them.
    pub jobs: &'static [Wire],
    /// How often the jobs' state is written under `data_dir/snapshots`
    /// (see [`crate::snapshot`]); `None` for never, so that every start
    /// rebuilds the views from the start of retention.
    pub snapshot_every: Option<Duration>,
    /// Whether sources record their epochs' bindings on `pace.bindings` and
    /// follow those recorded before (true unless told otherwise). Without
    /// them epochs are cut by the wall clock alone, so the same offsets no
    /// longer give the same seqs across restarts and replays (DESIGN.md,
    /// invariant 1): for measuring what the bindings cost, not for use.
    pub epoch_bindings: bool,
    /// Whether each worker counts its time per dataflow operator
    /// (`profile.rs`; about a tenth more CPU).
    pub operator_seconds: bool,
}

impl PipelineConfig {
    /// The epoch unless told otherwise.
    pub const DEFAULT_TICK: Duration = Duration::from_millis(50);
    /// How often snapshots are written unless told otherwise.
    pub const DEFAULT_SNAPSHOT_EVERY: Duration = Duration::from_secs(30);
    /// The consumer group unless told otherwise.
    pub const DEFAULT_GROUP: &str = "pace-pipeline";

    /// Defaults for `kafka`, running `jobs`.
    pub fn with_jobs(
        kafka: KafkaConfig,
        workers: usize,
        data_dir: PathBuf,
        jobs: &'static [Wire],
    ) -> Self {
        Self {
            kafka,
            workers,
            data_dir,
            group: Self::DEFAULT_GROUP.into(),
            tick: Self::DEFAULT_TICK,
            cluster: None,
            jobs,
            snapshot_every: Some(Self::DEFAULT_SNAPSHOT_EVERY),
            epoch_bindings: true,
            operator_seconds: false,
        }
    }
}

fn now_ms() -> i64 {
    Timestamp::now().0
}

fn epoch(tick: Duration) -> Time {
    let t = now_ms() as u64;
    let tick = tick.as_millis().max(1) as u64;
    t - t % tick
}

/// Runs the pipeline until `stop` is set, then drains and returns.
pub fn run(config: PipelineConfig, stop: Arc<AtomicBool>) -> Result<(), PipelineError> {
    let shared = Arc::new(shared::Shared::new(stop, config.cluster.is_some()));
    let workers = config.workers.max(1);
    let communication = match &config.cluster {
        None => timely::CommunicationConfig::Process(workers),
        Some(c) => {
            cluster::exit_when_a_peer_is_lost();
            c.communication(workers)
        }
    };
    let timely_config = timely::Config {
        communication,
        worker: timely::WorkerConfig::default(),
    };
    let shared2 = shared.clone();
    let guards = timely::execute(timely_config, move |worker| {
        let index = worker.index();
        worker::run_worker(worker, &config, &shared2).map_err(|source| PipelineError::Worker {
            worker: index,
            source,
        })
    })
    .map_err(PipelineError::Timely)?;
    for result in guards.join() {
        result.map_err(PipelineError::Timely)??;
    }
    match shared.take_error() {
        Some(source) => Err(PipelineError::Worker { worker: 0, source }),
        None => Ok(()),
    }
}
