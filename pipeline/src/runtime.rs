//! The worker runtime: timely workers reading Kafka, running the jobs and
//! writing the sinks.
//!
//! Time is the epoch, Unix milliseconds rounded down to [`PipelineConfig::tick`].
//! Each source stamps what it reads with the current epoch. A sink keeps a
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
//! Every [`PipelineConfig::snapshot_every`] the track and room states, the
//! standings sequence numbers, the first submission of each task id with a
//! result and the offsets they reflect are written under the data directory
//! ([`crate::snapshot`]); a start resumes from the latest complete snapshot,
//! or rebuilds from the start of retention without one. The consumer
//! group's committed offsets record durable progress (for lag monitoring)
//! but are not where reading resumes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use differential_dataflow::AsCollection;
use differential_dataflow::consolidation::consolidate;
use ingest::producer::TrackedProducer;
use ingest::source::{DeadLetter, Envelope, StaticConsumer, decode};
use ingest::{KafkaConfig, error_chain};
use schemas::{
    CalcTask, ChatEvent, GpsPoint, Packed, RaceDefinition, RoomChange, Split, SplitKey,
    StandingRow, StandingsChange, Timestamp, TimingCrossing, Validate,
};
use serde::de::DeserializeOwned;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::operator::{Operator, source};
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Capability, Concat, OkErr, Probe};
use timely::dataflow::{ProbeHandle, Scope, Stream};
use timely::scheduling::{Activator, SyncActivator};

use crate::jobs::calc_results::calc_results;
use crate::jobs::hash;
use crate::jobs::rooms::{RoomRow, RoomsState, room_membership_durable};
use crate::jobs::standings::{
    SplitRow, Standing, TrackState, crossing, definition, fix, race_standings_durable,
};
use crate::snapshot::{self, Snapshots};

/// Dataflow time: the epoch, Unix milliseconds.
pub type Time = u64;

/// A row of a race's view: a standing or a split.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
enum ViewRow {
    Standing(Standing),
    Split(SplitRow),
}

/// A change of a race view, as differential emits it.
type StandingsUpdate = ((String, ViewRow), Time, isize);

/// A change of the results view, as differential emits it.
type ResultUpdate = ((String, Envelope<schemas::TaskResult>), Time, isize);

/// A change of a room view, as differential emits it.
type RoomUpdate = ((String, RoomRow), Time, isize);

/// What a Kafka source emits: a decoded record, or a dead letter.
type Decoded<T> = Result<Envelope<T>, Box<DeadLetter>>;

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
    /// How often the jobs' state is written under `data_dir/snapshots`
    /// (see [`crate::snapshot`]); `None` for never, so that every start
    /// rebuilds the views from the start of retention.
    pub snapshot_every: Option<Duration>,
}

/// Where one process sits in a cluster of pipeline processes (timely's
/// cluster mode): each runs [`PipelineConfig::workers`] workers, and the
/// input partitions are spread over all processes × workers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    /// This process's index, from 0.
    pub process: usize,
    /// `host:port` of every process, by index; this process listens on its own.
    pub addresses: Vec<String>,
}

impl Cluster {
    /// The cluster of `processes` processes at the addresses of `hosts`
    /// (one `host:port` a line; blank lines and `#` comments are skipped;
    /// lines past the first `processes` are ignored), or at
    /// `127.0.0.1:2101`, `:2102`, … without a file. `None` for one process.
    pub fn new(
        processes: usize,
        process: usize,
        hosts: Option<&str>,
    ) -> Result<Option<Self>, String> {
        if process >= processes.max(1) {
            return Err(format!(
                "--process {process} is not below --processes {processes}"
            ));
        }
        if processes <= 1 {
            return Ok(None);
        }
        let addresses: Vec<String> = match hosts {
            Some(text) => text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .take(processes)
                .map(str::to_owned)
                .collect(),
            None => (0..processes)
                .map(|i| format!("127.0.0.1:{}", 2101 + i))
                .collect(),
        };
        if addresses.len() < processes {
            return Err(format!(
                "the hosts file names {} process(es), --processes is {processes}",
                addresses.len()
            ));
        }
        for a in &addresses {
            let port = a.rsplit_once(':').map(|(_, p)| p.parse::<u16>());
            if !matches!(port, Some(Ok(p)) if p > 0) {
                return Err(format!("{a:?} in the hosts file is not host:port"));
            }
        }
        Ok(Some(Self { process, addresses }))
    }
}

impl PipelineConfig {
    /// Defaults for `kafka`: 50 ms epochs.
    pub fn new(kafka: KafkaConfig, workers: usize, data_dir: PathBuf) -> Self {
        Self {
            kafka,
            workers,
            data_dir,
            group: "pace-pipeline".into(),
            tick: Duration::from_millis(50),
            cluster: None,
            snapshot_every: Some(DEFAULT_SNAPSHOT_EVERY),
        }
    }
}

/// How often snapshots are written unless told otherwise.
pub const DEFAULT_SNAPSHOT_EVERY: Duration = Duration::from_secs(30);

/// The parts each worker writes at a snapshot point: the sources' offsets,
/// the track and room states, the standings sequence numbers, and the first
/// submission of each task id that has a result.
mod part {
    /// The offsets of each source, in the order of [`super::Restored::offsets`].
    pub const SOURCES: [&str; 5] = ["gps", "timing", "races", "chat", "calc"];
    pub const TRACK: &str = "track";
    pub const ROOMS: &str = "rooms";
    pub const SEQS: &str = "standings-seqs";
    pub const RESULTS: &str = "results";
    /// Every part: a snapshot is finished once a worker has written them all.
    pub const ALL: [&str; 9] = [
        SOURCES[0], SOURCES[1], SOURCES[2], SOURCES[3], SOURCES[4], TRACK, ROOMS, SEQS, RESULTS,
    ];
}

/// Why the pipeline stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Setting up a worker failed (broker unreachable, topic missing, …).
    #[error("worker {worker}: {message}")]
    Worker {
        /// Worker index.
        worker: usize,
        /// What failed.
        message: String,
    },
    /// Timely could not start or a worker thread panicked.
    #[error("timely: {0}")]
    Timely(String),
}

/// Most records one source activation reads.
const MAX_BATCH: usize = 4096;
/// Most epochs a source lets be in flight (read, not yet durable) before it
/// stops reading: the bound on what the dataflow holds beyond its state.
const MAX_INFLIGHT_EPOCHS: usize = 1024;

/// How long after its last commit an idle source checks that the group has
/// its offsets, and commits again if not.
const COMMIT_RETRY: Duration = Duration::from_secs(1);
/// How long that check waits for the broker.
const COMMIT_CHECK: Duration = Duration::from_millis(200);

/// How long an idle worker parks before looking at the stop flag again.
const IDLE_PARK: Duration = Duration::from_millis(200);

/// How often an idle source polls its consumer even without a wake-up: a
/// wake-up that never comes (the client signals only a queue that was
/// empty) then delays records by at most this, instead of for good.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// The view an input topic feeds, for latency metrics and origin headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum View {
    Standings,
    Rooms,
    Results,
}

impl View {
    fn name(self) -> &'static str {
        match self {
            View::Standings => "standings",
            View::Rooms => "rooms",
            View::Results => "results",
        }
    }
}

/// Kafka timestamps of the records one source read in one epoch, run-length
/// encoded by millisecond, for the view latency histogram.
type Stamps = Vec<(i64, u32)>;

/// What a worker's sources read per epoch, until the epoch is durable.
type Reads = Rc<std::cell::RefCell<BTreeMap<Time, Vec<(View, Stamps)>>>>;

/// State shared by all workers of the process.
struct Shared {
    stop: Arc<AtomicBool>,
    /// Until when (Unix ms) data is in flight somewhere: idle sources keep
    /// advancing their epoch until then so that data can complete.
    busy_until_ms: AtomicI64,
    error: Mutex<Option<String>>,
    /// Worker threads, to wake when data starts to flow.
    threads: Mutex<Vec<std::thread::Thread>>,
    /// The oldest Kafka timestamp read per view and epoch, until the epoch
    /// is durable: the origin a view change of that epoch carries.
    origins: Mutex<BTreeMap<(View, Time), i64>>,
    /// Sources advance their epoch every tick, idle or not: in a cluster a
    /// process cannot see that another one has data in flight, which its
    /// idle sources would otherwise hold back.
    always_tick: bool,
}

impl Shared {
    /// Notes that data entered the dataflow; wakes every worker if it was idle,
    /// so that their sources advance too.
    fn data_in_flight(&self) {
        let now = now_ms();
        if self.busy_until_ms.fetch_max(now + 1000, Ordering::SeqCst) < now {
            for t in self.threads.lock().expect("threads lock").iter() {
                t.unpark();
            }
        }
    }

    /// Notes that `view` read a record produced at `ms` in epoch `t`.
    fn note_origin(&self, view: View, t: Time, ms: i64) {
        let mut origins = self.origins.lock().expect("origins lock");
        let o = origins.entry((view, t)).or_insert(ms);
        *o = (*o).min(ms);
    }

    /// The origin of `view`'s changes in epoch `t`.
    fn origin(&self, view: View, t: Time) -> Option<i64> {
        self.origins
            .lock()
            .expect("origins lock")
            .get(&(view, t))
            .copied()
    }

    /// Forgets origins of epochs before `frontier`: their changes are sent.
    fn forget_origins(&self, frontier: Time) {
        let mut origins = self.origins.lock().expect("origins lock");
        origins.retain(|(_, t), _| *t >= frontier);
    }

    fn busy(&self) -> bool {
        self.always_tick || self.busy_until_ms.load(Ordering::SeqCst) > now_ms()
    }

    fn fail(&self, message: String) {
        tracing::error!(%message, "pipeline stopping");
        self.error
            .lock()
            .expect("error lock")
            .get_or_insert(message);
        self.stop.store(true, Ordering::SeqCst);
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
    let shared = Arc::new(Shared {
        stop,
        busy_until_ms: AtomicI64::new(0),
        error: Mutex::new(None),
        threads: Mutex::new(Vec::new()),
        origins: Mutex::new(BTreeMap::new()),
        always_tick: config.cluster.is_some(),
    });
    let workers = config.workers.max(1);
    if config.cluster.is_some() {
        exit_when_a_peer_is_lost();
    }
    let communication = match &config.cluster {
        None => timely::CommunicationConfig::Process(workers),
        Some(c) => timely::CommunicationConfig::Cluster {
            threads: workers,
            process: c.process,
            addresses: c.addresses.clone(),
            report: false,
            zerocopy: false,
        },
    };
    let timely_config = timely::Config {
        communication,
        worker: timely::WorkerConfig::default(),
    };
    let shared2 = shared.clone();
    let guards = timely::execute(timely_config, move |worker| {
        let index = worker.index();
        run_worker(worker, &config, &shared2).map_err(|message| PipelineError::Worker {
            worker: index,
            message,
        })
    })
    .map_err(PipelineError::Timely)?;
    for result in guards.join() {
        result.map_err(PipelineError::Timely)??;
    }
    match shared.error.lock().expect("error lock").take() {
        Some(message) => Err(PipelineError::Worker { worker: 0, message }),
        None => Ok(()),
    }
}

/// The exit status of a cluster process whose peer was lost: the cluster
/// has to be restarted as a whole (see [`exit_when_a_peer_is_lost`]).
pub const EXIT_PEER_LOST: i32 = 75;

/// Makes the process exit with [`EXIT_PEER_LOST`] when timely's network
/// thread loses the connection to another process of the cluster (it panics
/// with "timely communication error"). Timely cannot take a process back,
/// and this process's workers would otherwise wait for the lost one forever;
/// exiting lets a supervisor restart every process, and each resumes from
/// what was durable (commits, archive) as after any crash.
fn exit_when_a_peer_is_lost() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("timely communication error") {
            tracing::error!(
                %message,
                status = EXIT_PEER_LOST,
                "lost a process of the cluster; exiting so that every process restarts"
            );
            std::process::exit(EXIT_PEER_LOST);
        }
        default(info);
    }));
}

fn run_worker(
    worker: &mut timely::worker::Worker,
    config: &PipelineConfig,
    shared: &Arc<Shared>,
) -> Result<(), String> {
    let (index, peers) = (worker.index(), worker.peers());
    shared
        .threads
        .lock()
        .expect("threads lock")
        .push(std::thread::current());
    let topics = &config.kafka.topics;
    let snaps = match config.snapshot_every {
        None => None,
        Some(every) => {
            let threads = config.workers.max(1);
            let first = config.cluster.as_ref().map_or(0, |c| c.process * threads);
            let mut s = Snapshots::new(
                &config.data_dir,
                every.as_millis().max(1) as u64,
                index,
                peers,
                first..first + threads,
            );
            let point = snapshot::agree(worker, s.complete());
            s.restore_from(point);
            if let Some(point) = point
                && index == first
            {
                tracing::info!(point, "restoring the views from a snapshot");
            }
            Some(Rc::new(s))
        }
    };
    let mut restored = Restored::read(snaps.as_deref(), &config.data_dir)?;
    let consumer = |topic: &str, from: &BTreeMap<i32, i64>| {
        StaticConsumer::resuming(&config.kafka, &config.group, topic, index, peers, from)
            .map_err(|e| error_chain(&e))
    };
    let gps_consumer = consumer(&topics.gps, &restored.offsets[0])?;
    let timing_consumer = consumer(&topics.timing, &restored.offsets[1])?;
    let races_consumer = consumer(&topics.races, &restored.offsets[2])?;
    let chat_consumer = consumer(&topics.chat, &restored.offsets[3])?;
    let calc_consumer = consumer(&topics.calc, &restored.offsets[4])?;
    let producer = Rc::new(TrackedProducer::new(&config.kafka).map_err(|e| error_chain(&e))?);
    let probe = ProbeHandle::<Time>::new();
    let reads: Reads = Rc::default();

    let sources = worker.dataflow::<Time, _, _>(|scope| {
        let ctx = SourceContext {
            config,
            shared,
            probe: &probe,
            reads: &reads,
            snaps: &snaps,
        };
        let [gps_part, timing_part, races_part, chat_part, calc_part] = part::SOURCES;
        let (gps, gps_act) =
            kafka_source::<GpsPoint>(scope, gps_consumer, View::Standings, gps_part, &ctx);
        let (timing, timing_act) = kafka_source::<TimingCrossing>(
            scope,
            timing_consumer,
            View::Standings,
            timing_part,
            &ctx,
        );
        let (races, races_act) = kafka_source::<RaceDefinition>(
            scope,
            races_consumer,
            View::Standings,
            races_part,
            &ctx,
        );
        let (chat, chat_act) =
            kafka_source::<ChatEvent>(scope, chat_consumer, View::Rooms, chat_part, &ctx);
        let (chat_ok, chat_err) = chat.ok_err(|r| r);
        let (calc, calc_act) =
            kafka_source::<CalcTask>(scope, calc_consumer, View::Results, calc_part, &ctx);
        let (calc_ok, calc_err) = calc.ok_err(|r| r);
        let (gps_ok, gps_err) = gps.ok_err(|r| r);
        let (timing_ok, timing_err) = timing.ok_err(|r| r);
        let (races_ok, races_err) = races.ok_err(|r| r);

        let dlq = {
            let topics = topics.clone();
            kafka_sink(
                gps_err
                    .concat(timing_err)
                    .concat(races_err)
                    .concat(chat_err)
                    .concat(calc_err),
                Pipeline,
                "DeadLetters",
                |_| None,
                (&producer, shared, config.tick),
                |_| {},
                move |producer, letters, ticket| {
                    letters.iter().try_for_each(|l| {
                        sinks::kafka::send_dead_letter(producer, &topics, l, ticket)
                    })
                },
            )
        };

        let observations = stamp(
            gps_ok
                .map(|e: Envelope<GpsPoint>| fix(e.record))
                .concat(timing_ok.map(|e: Envelope<TimingCrossing>| crossing(e.record))),
        )
        .as_collection();
        let races =
            stamp(races_ok.map(|e: Envelope<RaceDefinition>| definition(&e.record, e.offset)))
                .as_collection();
        let views = race_standings_durable(
            observations,
            races,
            snaps.clone().map(|s| (s, restored.track.take())),
        );
        let rows = views
            .standings
            .map(|(race, s)| (race, ViewRow::Standing(s)))
            .concat(views.splits.map(|(race, s)| (race, ViewRow::Split(s))));

        let changelog = {
            let topics = topics.clone();
            let origins = shared.clone();
            // Each race's change sequence number, continued from a snapshot.
            let seqs = Rc::new(std::cell::RefCell::new(std::mem::take(&mut restored.seqs)));
            let (written, snaps) = (seqs.clone(), snaps.clone());
            let mut last_point = 0;
            kafka_sink(
                rows.inner,
                Exchange::new(|u: &StandingsUpdate| hash(&(u.0).0)),
                "StandingsChangelog",
                |u: &StandingsUpdate| Some(u.1),
                (&producer, shared, config.tick),
                move |upto| {
                    if let Some(s) = &snaps
                        && let Some(point) = s.due(&mut last_point, upto)
                    {
                        s.write_value(point, part::SEQS, &*written.borrow());
                    }
                },
                move |producer, updates, ticket| {
                    let origin = origins.origin(View::Standings, ticket as Time);
                    standings_changes(updates, &mut seqs.borrow_mut())
                        .iter()
                        .try_for_each(|c| {
                            sinks::kafka::send_standings_change(
                                producer, &topics, c, origin, ticket,
                            )
                        })
                },
            )
        };

        let events =
            stamp(chat_ok.map(|e: Envelope<ChatEvent>| {
                (e.record.room.clone(), (e.offset, Packed(e.record)))
            }))
            .as_collection();
        let rooms = {
            let topics = topics.clone();
            let origins = shared.clone();
            let durable = snaps.clone().map(|s| (s, restored.rooms.take()));
            kafka_sink(
                room_membership_durable(events, durable).inner,
                Exchange::new(|u: &RoomUpdate| hash(&(u.0).0)),
                "RoomsChangelog",
                |u: &RoomUpdate| Some(u.1),
                (&producer, shared, config.tick),
                |_| {},
                move |producer, updates, ticket| {
                    let origin = origins.origin(View::Rooms, ticket as Time);
                    room_changes(updates).iter().try_for_each(|c| {
                        sinks::kafka::send_room_change(producer, &topics, c, origin, ticket)
                    })
                },
            )
        };

        // The first submissions of the ids a snapshot had results for go
        // in again at time 0, so the job knows them (their results are not
        // written again).
        let resubmitted = {
            let mut first = Some(restored.first.values().cloned().collect::<Vec<_>>());
            source(scope, "RestoredTasks", move |cap, _info| {
                let mut cap = Some(cap);
                move |output| {
                    if let (Some(c), Some(tasks)) = (cap.take(), first.take()) {
                        let mut session = output.session(&c);
                        for t in tasks {
                            session.give((t.record.id.clone(), t));
                        }
                    }
                }
            })
        };
        let submissions = stamp(
            calc_ok
                .map(|e: Envelope<CalcTask>| (e.record.id.clone(), e))
                .concat(resubmitted),
        )
        .as_collection();
        let evaluated = calc_results(submissions).inner;
        let results = {
            let topics = topics.clone();
            let origins = shared.clone();
            let tasks = &observability::metrics().tasks;
            // The first submission of each id with a result, for snapshots.
            let first = Rc::new(std::cell::RefCell::new(std::mem::take(&mut restored.first)));
            let (written, snaps) = (first.clone(), snaps.clone());
            let mut last_point = 0;
            kafka_sink(
                evaluated,
                Exchange::new(|u: &ResultUpdate| hash(&(u.0).0)),
                "ResultsChangelog",
                |u: &ResultUpdate| Some(u.1),
                (&producer, shared, config.tick),
                move |upto| {
                    if let Some(s) = &snaps
                        && let Some(point) = s.due(&mut last_point, upto)
                    {
                        s.write_value(point, part::RESULTS, &*written.borrow());
                    }
                },
                move |producer, updates, ticket| {
                    // A result only appears: the first submission of an id
                    // stays the first.
                    let origin = origins.origin(View::Results, ticket as Time);
                    let mut first = first.borrow_mut();
                    updates
                        .iter()
                        .filter(|u| u.2 > 0)
                        .try_for_each(|((_, r), _, _)| {
                            first.insert(r.record.id.clone(), submission_of(r));
                            tasks.with_label_values(&[r.record.status.as_str()]).inc();
                            sinks::kafka::send_task_result(
                                producer, &topics, &r.record, origin, ticket,
                            )
                        })
                },
            )
        };

        dlq.concat(changelog)
            .concat(rooms)
            .concat(results)
            .probe_with(&probe);
        [gps_act, timing_act, races_act, chat_act, calc_act]
    });

    let m = observability::metrics();
    let frontier_gauge = m.pipeline_frontier.with_label_values(&[&index.to_string()]);
    let frontier_lag = m
        .pipeline_frontier_lag
        .with_label_values(&[&index.to_string()]);
    let view_latency: Vec<_> = [View::Standings, View::Rooms, View::Results]
        .iter()
        .map(|v| m.view_latency.with_label_values(&[v.name()]))
        .collect();
    let mut stopping = false;
    let mut next_advance = Instant::now();
    while !probe.done() {
        if shared.stop.load(Ordering::SeqCst) && !stopping {
            stopping = true;
            for a in &sources {
                a.activate();
            }
        }
        if let Some(reason) = producer.failure() {
            shared.fail(format!("delivery failed: {reason}"));
        }
        // While data is in flight anywhere, every source advances its epoch
        // once a tick (an idle source would otherwise hold the frontier back).
        let park = if shared.busy() {
            let now = Instant::now();
            if now >= next_advance {
                for a in &sources {
                    a.activate();
                }
                next_advance = now + config.tick;
            }
            next_advance.saturating_duration_since(now)
        } else {
            IDLE_PARK
        };
        worker.step_or_park(Some(park));
        let frontier = probe.with_frontier(|f| f.first().copied());
        if let Some(t) = frontier {
            frontier_gauge.set(t as f64 / 1000.0);
            let behind = if shared.busy() {
                (now_ms() - t as i64).max(0) as f64 / 1000.0
            } else {
                0.0
            };
            frontier_lag.set(behind);
        }
        // Every record read in an epoch the probe has passed is in the views
        // (the changes are durable): observe its latency.
        let done = frontier.unwrap_or(Time::MAX);
        if let Some(s) = &snaps {
            s.finish(done, &part::ALL);
        }
        let mut reads = reads.borrow_mut();
        if reads.first_key_value().is_some_and(|(t, _)| *t < done) {
            let later = reads.split_off(&done);
            for (view, stamps) in std::mem::replace(&mut *reads, later)
                .into_values()
                .flatten()
            {
                let h = &view_latency[view as usize];
                for (ms, n) in stamps {
                    let s = Timestamp(ms).elapsed_s();
                    for _ in 0..n {
                        h.observe(s);
                    }
                }
            }
            shared.forget_origins(done);
        }
    }
    producer
        .flush(Duration::from_secs(30))
        .map_err(|e| error_chain(&e))
}

/// Turns one epoch's consolidated view updates into one change per race.
fn standings_changes(
    mut updates: Vec<StandingsUpdate>,
    seqs: &mut BTreeMap<String, u64>,
) -> Vec<StandingsChange> {
    let mut flat: Vec<((String, ViewRow), isize)> =
        updates.drain(..).map(|(d, _, r)| (d, r)).collect();
    consolidate(&mut flat);
    #[derive(Default)]
    struct Change {
        upserts: BTreeMap<String, StandingRow>,
        removes: BTreeSet<String>,
        splits: BTreeMap<SplitKey, Split>,
        split_removes: BTreeSet<SplitKey>,
    }
    let mut by_race: BTreeMap<String, Change> = BTreeMap::new();
    // Insertions first: a retraction of a row that is also inserted is an update.
    flat.sort_by_key(|(_, diff)| std::cmp::Reverse(*diff > 0));
    for ((race, row), diff) in flat {
        let change = by_race.entry(race.clone()).or_default();
        match row {
            ViewRow::Standing(s) if diff > 0 => {
                change
                    .upserts
                    .insert(s.participant.clone(), standing_row(&race, &s));
            }
            ViewRow::Standing(s) => {
                if !change.upserts.contains_key(&s.participant) {
                    change.removes.insert(s.participant);
                }
            }
            ViewRow::Split(s) => {
                let key = SplitKey {
                    participant: s.participant.clone(),
                    split: s.split,
                };
                if diff > 0 {
                    change.splits.insert(key, split_row(&race, &s));
                } else if !change.splits.contains_key(&key) {
                    change.split_removes.insert(key);
                }
            }
        }
    }
    let mut out = Vec::new();
    for (race, c) in by_race {
        let mut upserts: Vec<StandingRow> = c.upserts.into_values().collect();
        upserts.sort_by_key(|r| r.rank);
        let seq = seqs.entry(race.clone()).or_default();
        // A change of a big race goes out in pieces of at most
        // MAX_CHANGE_ROWS rows, removals and splits together, each with the
        // next sequence number, so that no record outgrows what the broker
        // takes (1 MB by default). Applied in order, the pieces make the
        // whole change.
        let mut removes: Vec<String> = c.removes.into_iter().collect();
        let mut splits: Vec<Split> = c.splits.into_values().collect();
        let mut split_removes: Vec<SplitKey> = c.split_removes.into_iter().collect();
        loop {
            let mut room = MAX_CHANGE_ROWS;
            let upserts_now = take_front(&mut upserts, &mut room);
            let removes_now = take_front(&mut removes, &mut room);
            let splits_now = take_front(&mut splits, &mut room);
            let split_removes_now = take_front(&mut split_removes, &mut room);
            *seq += 1;
            out.push(StandingsChange {
                race: race.clone(),
                seq: *seq,
                upserts: upserts_now,
                removes: removes_now,
                splits: splits_now,
                split_removes: split_removes_now,
            });
            if upserts.is_empty()
                && removes.is_empty()
                && splits.is_empty()
                && split_removes.is_empty()
            {
                break;
            }
        }
    }
    out
}

/// Most standings rows, removals and splits in one changelog record (a row
/// is about 300 bytes, a split less).
const MAX_CHANGE_ROWS: usize = 1000;

/// Takes up to `room` items off the front of `items`, leaving the rest in
/// order; `room` shrinks by as many.
fn take_front<T>(items: &mut Vec<T>, room: &mut usize) -> Vec<T> {
    let n = items.len().min(*room);
    *room -= n;
    let rest = items.split_off(n);
    std::mem::replace(items, rest)
}

/// Turns one epoch's consolidated room updates into one change per room.
fn room_changes(mut updates: Vec<RoomUpdate>) -> Vec<RoomChange> {
    let mut flat: Vec<((String, RoomRow), isize)> =
        updates.drain(..).map(|(d, _, r)| (d, r)).collect();
    consolidate(&mut flat);
    // Insertions first: a retraction of a member also inserted is an update.
    flat.sort_by_key(|(_, diff)| std::cmp::Reverse(*diff > 0));
    let mut by_room: BTreeMap<String, RoomChange> = BTreeMap::new();
    for ((room, row), diff) in flat {
        let change = by_room.entry(room.clone()).or_insert_with(|| RoomChange {
            room,
            members: Vec::new(),
            removes: Vec::new(),
            messages: Vec::new(),
            visibility: None,
            created_by: None,
            create_id: None,
            invited: Vec::new(),
        });
        match row {
            RoomRow::Member(Packed(m)) if diff > 0 => change.members.push(m),
            RoomRow::Member(Packed(m)) => {
                if !change.members.iter().any(|x| x.user == m.user) {
                    change.removes.push(m.user);
                }
            }
            RoomRow::Message(Packed(m)) if diff > 0 => change.messages.push(m),
            RoomRow::Created(c) if diff > 0 => {
                change.visibility = Some(c.visibility);
                change.created_by = c.by;
                change.create_id = c.create_id;
            }
            RoomRow::Invited(u) if diff > 0 => change.invited.push(u),
            // Messages, creation and invitations are never retracted.
            RoomRow::Message(_) | RoomRow::Created(_) | RoomRow::Invited(_) => {}
        }
    }
    by_room
        .into_values()
        .map(|mut c| {
            c.messages.sort_by_key(|m| m.seq);
            c
        })
        .collect()
}

fn standing_row(race: &str, s: &Standing) -> StandingRow {
    let seconds = |ms: i64| ms as f64 / 1000.0;
    StandingRow {
        race: race.to_owned(),
        rank: s.rank,
        participant: s.participant.clone(),
        name: s.participant.clone(),
        distance_m: s.progress_mm as f64 / 1000.0,
        laps: s.laps,
        leg: s.leg,
        gap_m: s.gap_mm.map(|g| g as f64 / 1000.0),
        gap_s: s.gap_ms.map(seconds),
        speed_mps: s.speed_mmps.map(|v| v as f64 / 1000.0),
        last_lap_s: s.last_lap_ms.map(seconds),
        last_seen: Timestamp(s.last_seen_ms),
        status: s.status,
        eta: s.eta_ms.map(Timestamp),
        position: s.position_e7.map(|(lat, lon)| schemas::LatLon {
            lat: lat as f64 / 1e7,
            lon: lon as f64 / 1e7,
        }),
    }
}

fn split_row(race: &str, s: &SplitRow) -> Split {
    Split {
        race: race.to_owned(),
        participant: s.participant.clone(),
        split: s.split,
        time: Timestamp(s.time_ms),
        position: s.position,
    }
}

/// Attaches each record's epoch, making a stream of differential updates.
fn stamp<'s, D: Clone + 'static>(
    stream: Stream<'s, Time, Vec<D>>,
) -> Stream<'s, Time, Vec<(D, Time, isize)>> {
    stream.unary(Pipeline, "Stamp", |_, _| {
        move |input, output| {
            input.for_each(|cap, data| {
                if let Some(cap) = cap.retain_least(output.output_index()) {
                    let t = *cap.time();
                    output
                        .session(&cap)
                        .give_iterator(data.drain(..).map(|d| (d, t, 1)));
                }
            });
        }
    })
}

/// What every source of a worker shares.
struct SourceContext<'a> {
    config: &'a PipelineConfig,
    shared: &'a Arc<Shared>,
    probe: &'a ProbeHandle<Time>,
    reads: &'a Reads,
    snaps: &'a Option<Rc<Snapshots>>,
}

/// The submission a task result came from: what the calculation job needs
/// to know the id again after a restore.
fn submission_of(r: &Envelope<schemas::TaskResult>) -> Envelope<CalcTask> {
    Envelope {
        partition: r.partition,
        offset: r.offset,
        timestamp_ms: r.timestamp_ms,
        record: CalcTask {
            id: r.record.id.clone(),
            expression: r.record.expression.clone(),
            time: r.record.submitted_at,
        },
    }
}

/// What a worker restores from a snapshot (nothing without one).
#[derive(Default)]
struct Restored {
    /// Next offset per partition of gps, timing, races, chat and calc.
    offsets: [BTreeMap<i32, i64>; 5],
    track: Option<TrackState>,
    rooms: Option<RoomsState>,
    seqs: BTreeMap<String, u64>,
    /// The first submission of each task id with a result, by id.
    first: BTreeMap<String, Envelope<CalcTask>>,
}

impl Restored {
    /// This worker's parts of the restored snapshot. An unreadable part
    /// stops the start: the other parts alone would give wrong views.
    fn read(snaps: Option<&Snapshots>, data_dir: &std::path::Path) -> Result<Self, String> {
        let Some(s) = snaps.filter(|s| s.restored().is_some()) else {
            return Ok(Self::default());
        };
        let fail = |e: String| {
            format!(
                "snapshot unreadable ({e}); remove {} to rebuild the views from the start of retention",
                data_dir.join("snapshots").display()
            )
        };
        let mut offsets: [BTreeMap<i32, i64>; 5] = Default::default();
        for (o, part) in offsets.iter_mut().zip(part::SOURCES) {
            *o = s.read(part).map_err(fail)?.unwrap_or_default();
        }
        Ok(Self {
            offsets,
            track: s.read(part::TRACK).map_err(fail)?,
            rooms: s.read(part::ROOMS).map_err(fail)?,
            seqs: s.read(part::SEQS).map_err(fail)?.unwrap_or_default(),
            first: s.read(part::RESULTS).map_err(fail)?.unwrap_or_default(),
        })
    }
}

/// Reads one topic's assigned partitions into the dataflow: each record decoded
/// and validated, or a dead letter. `view` is the view the topic feeds.
fn kafka_source<'s, T>(
    scope: Scope<'s, Time>,
    mut consumer: StaticConsumer,
    view: View,
    part: &'static str,
    ctx: &SourceContext<'_>,
) -> (Stream<'s, Time, Vec<Decoded<T>>>, Activator)
where
    T: DeserializeOwned + Validate + Clone + 'static,
{
    let topic = consumer.topic().to_owned();
    let tick = ctx.config.tick;
    let shared = ctx.shared.clone();
    let probe = ctx.probe.clone();
    let reads = ctx.reads.clone();
    let snaps = ctx.snaps.clone();
    let mut last_point = 0;
    let mut activator_out = None;
    let stream = source(scope, &format!("Kafka({topic})"), |cap, info| {
        let activator = scope.activator_for(info.address.clone());
        activator_out = Some(activator.clone());
        let sync: Mutex<SyncActivator> =
            Mutex::new(scope.worker().sync_activator_for(info.address.to_vec()));
        consumer.on_ready(move || {
            let _ = sync.lock().expect("activator lock").activate();
        });
        let m = observability::metrics();
        let (records, bytes) = (
            m.ingest_records.with_label_values(&[topic.as_str()]),
            m.ingest_bytes.with_label_values(&[topic.as_str()]),
        );
        let mut cap = Some(cap);
        let mut inflight: VecDeque<(Time, BTreeMap<i32, i64>)> = VecDeque::new();
        // The latest durable offsets, committed again until the group has them.
        let mut durable: BTreeMap<i32, i64> = BTreeMap::new();
        let mut unverified = false;
        let mut committed_at = Instant::now();
        move |output| {
            // Commit what every sink has made durable; at the very end (the
            // frontier is empty) synchronously, so nothing is left in flight.
            let finished = probe.done();
            while let Some((t, _)) = inflight.front() {
                if probe.less_equal(t) {
                    break;
                }
                let (_, offsets) = inflight.pop_front().expect("non-empty");
                if let Err(e) = consumer.commit(&offsets, finished) {
                    tracing::warn!(topic = %topic, error = %error_chain(&e), "offset commit failed");
                }
                durable = offsets;
                unverified = true;
                committed_at = Instant::now();
            }
            if shared.stop.load(Ordering::SeqCst) {
                // Read nothing more; let what was read drain through the sinks.
                cap = None;
            }
            let Some(c) = cap.as_mut() else { return };
            let now = epoch(tick);
            if *c.time() < now {
                c.downgrade(&now);
            }
            // Everything read so far is stamped before `now`: at a snapshot
            // point, that is what the snapshot reflects.
            if let Some(s) = &snaps
                && let Some(point) = s.due(&mut last_point, now)
            {
                s.write_value(point, part, consumer.positions());
            }
            let mut more = false;
            if inflight.len() < MAX_INFLIGHT_EPOCHS {
                let batch = consumer.poll(MAX_BATCH);
                more = batch.len() == MAX_BATCH;
                if !batch.is_empty() {
                    records.inc_by(batch.len() as u64);
                    bytes.inc_by(batch.iter().map(|r| r.payload.len() as u64).sum());
                    let stamps = stamps(&batch);
                    if let Some(oldest) = stamps.iter().map(|(ms, _)| *ms).min() {
                        shared.note_origin(view, now, oldest);
                    }
                    reads
                        .borrow_mut()
                        .entry(now)
                        .or_default()
                        .push((view, stamps));
                    let mut session = output.session(&*c);
                    for raw in batch {
                        let decoded = decode::<T>(&topic, raw);
                        if let Err(dl) = &decoded {
                            m.ingest_invalid
                                .with_label_values(&[topic.as_str(), dl.kind])
                                .inc();
                            tracing::debug!(topic = %topic, partition = dl.partition, offset = dl.offset, reason = %dl.reason, "dead letter");
                        }
                        session.give(decoded);
                    }
                    drop(session);
                    let positions = consumer.positions().clone();
                    match inflight.back_mut() {
                        Some((t, offsets)) if *t == now => *offsets = positions,
                        _ => inflight.push_back((now, positions)),
                    }
                    shared.data_in_flight();
                }
            }
            // Once idle, the last commit is checked a second later and sent
            // again until the group has it: an asynchronous commit can be
            // lost (a coordinator that moves during a broker outage), and the
            // group's offsets (and the lag they show) would stay behind.
            if unverified && inflight.is_empty() && committed_at.elapsed() >= COMMIT_RETRY {
                if consumer.behind(&durable, COMMIT_CHECK) {
                    tracing::debug!(topic = %topic, "offsets not committed yet; committing again");
                    if let Err(e) = consumer.commit(&durable, false) {
                        tracing::warn!(topic = %topic, error = %error_chain(&e), "offset commit failed");
                    }
                    committed_at = Instant::now();
                } else {
                    unverified = false;
                }
            }
            if more {
                activator.activate();
            } else if !inflight.is_empty() {
                // Every worker keeps advancing its epochs until what was
                // read is durable, however late this worker got to run.
                shared.data_in_flight();
                activator.activate_after(tick);
            } else if unverified {
                activator.activate_after(COMMIT_RETRY);
            } else {
                activator.activate_after(IDLE_POLL);
            }
        }
    });
    (stream, activator_out.expect("source constructor ran"))
}

/// The Kafka timestamps of `batch`, run-length encoded.
fn stamps(batch: &[ingest::source::RawRecord]) -> Stamps {
    let mut out: Stamps = Vec::new();
    for ms in batch.iter().filter_map(|r| r.timestamp_ms) {
        match out.last_mut() {
            Some((last, n)) if *last == ms => *n += 1,
            _ => out.push((ms, 1)),
        }
    }
    out
}

/// A sink that produces each epoch's records to Kafka once the epoch is
/// complete (`send` gets them and the epoch's ticket), and holds the epoch
/// open until the broker has acknowledged all of them. A send that fails
/// stops the pipeline.
fn kafka_sink<'s, D, P>(
    stream: Stream<'s, Time, Vec<D>>,
    pact: P,
    name: &str,
    time_of: fn(&D) -> Option<Time>,
    (producer, shared, tick): (&Rc<TrackedProducer>, &Arc<Shared>, Duration),
    mut at_point: impl FnMut(Time) + 'static,
    mut send: impl FnMut(&TrackedProducer, Vec<D>, usize) -> Result<(), sinks::SinkError> + 'static,
) -> Stream<'s, Time, Vec<()>>
where
    D: Clone + 'static,
    P: timely::dataflow::channels::pact::ParallelizationContract<Time, Vec<D>>,
{
    let scope = stream.scope();
    let (producer, shared) = (producer.clone(), shared.clone());
    stream.unary_frontier(pact, name, |_cap, info| {
        let activator = scope.activator_for(info.address.clone());
        let sync = Mutex::new(scope.worker().sync_activator_for(info.address.to_vec()));
        producer.on_settled(move || {
            let _ = sync.lock().expect("activator lock").activate();
        });
        // A capability per epoch with records, held until the broker has them all.
        let mut held: BTreeMap<Time, Capability<Time>> = BTreeMap::new();
        let mut pending: BTreeMap<Time, Vec<D>> = BTreeMap::new();
        move |(input, frontier),
              _output: &mut timely::dataflow::operators::generic::OutputBuilderSession<
            '_,
            Time,
            timely::container::CapacityContainerBuilder<Vec<()>>,
        >| {
            input.for_each(|cap, data| {
                let Some(&cap_time) = cap.least() else { return };
                for d in data.drain(..) {
                    let t = time_of(&d).unwrap_or(cap_time);
                    held.entry(t).or_insert_with(|| cap.delayed(&t, 0));
                    pending.entry(t).or_default().push(d);
                }
            });
            // Epochs complete in order: an epoch is sent once no more of it
            // can arrive, and released once it is durable. What comes at
            // time 0 is state a restored operator re-emits: it was written
            // before the snapshot, so it is not written again.
            while let Some((&t, _)) = held.first_key_value() {
                if frontier.frontier().less_equal(&t) {
                    break;
                }
                let ticket = t as usize;
                if let Some(items) = pending.remove(&t) {
                    at_point(t);
                    if t > 0
                        && let Err(e) = send(&producer, items, ticket)
                    {
                        shared.fail(error_chain(&e));
                    }
                }
                if producer.pending(ticket) != 0 {
                    break;
                }
                held.remove(&t);
            }
            // Every epoch before this is sent.
            let sent = frontier.frontier().first().copied();
            if let Some(upto) = sent.map(|f| pending.keys().next().map_or(f, |&p| p.min(f))) {
                at_point(upto);
            }
            if !held.is_empty() {
                activator.activate_after(tick);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_comes_from_the_flags_and_bad_ones_say_why() {
        assert_eq!(Cluster::new(1, 0, None), Ok(None));
        let hosts = "# pace\n10.0.0.1:2101\n\n10.0.0.2:2101\n10.0.0.3:2101\n";
        assert_eq!(
            Cluster::new(2, 1, Some(hosts)),
            Ok(Some(Cluster {
                process: 1,
                addresses: vec!["10.0.0.1:2101".into(), "10.0.0.2:2101".into()],
            }))
        );
        assert_eq!(
            Cluster::new(2, 0, None).unwrap().unwrap().addresses,
            ["127.0.0.1:2101", "127.0.0.1:2102"]
        );
        for (n, i, hosts, says) in [
            (2, 2, None, "not below"),
            (1, 1, None, "not below"),
            (4, 0, Some(hosts), "names 3"),
            (2, 0, Some("a:1\nb\n"), "\"b\""),
            (2, 0, Some("a:1\nb:0\n"), "host:port"),
        ] {
            let e = Cluster::new(n, i, hosts).unwrap_err();
            assert!(e.contains(says), "{n} {i} {hosts:?}: {e}");
        }
    }

    fn standing(i: u32) -> Standing {
        Standing {
            rank: i + 1,
            participant: format!("p{i:05}"),
            status: schemas::Status::Racing,
            progress_mm: 1_000_000 - i64::from(i),
            gap_mm: None,
            gap_ms: None,
            laps: None,
            leg: None,
            speed_mmps: None,
            last_lap_ms: None,
            last_seen_ms: 1_777_622_400_000,
            eta_ms: None,
            position_e7: None,
        }
    }

    #[test]
    fn a_big_race_change_goes_out_in_pieces_with_consecutive_seqs() {
        // 2,005 rows, a removal and 1,500 splits: 3,506 items, so 4 pieces.
        let runners = 2 * MAX_CHANGE_ROWS as u32 + 5;
        let split = |i: u32| SplitRow {
            participant: format!("p{i:05}"),
            split: 1,
            time_ms: i64::from(i),
            position: i + 1,
        };
        let updates: Vec<StandingsUpdate> = (0..runners)
            .map(|i| (("big".to_owned(), ViewRow::Standing(standing(i))), 0, 1))
            .chain((0..1500).map(|i| (("big".to_owned(), ViewRow::Split(split(i))), 0, 1)))
            .chain(std::iter::once((
                ("big".to_owned(), ViewRow::Standing(standing(runners + 1))),
                0,
                -1,
            )))
            .collect();
        let mut seqs = BTreeMap::from([("big".to_owned(), 7)]);
        let changes = standings_changes(updates, &mut seqs);
        assert_eq!(
            changes.iter().map(|c| c.seq).collect::<Vec<_>>(),
            [8, 9, 10, 11]
        );
        assert_eq!(seqs["big"], 11);
        for c in &changes {
            let items = c.upserts.len() + c.removes.len() + c.splits.len() + c.split_removes.len();
            assert!(items <= MAX_CHANGE_ROWS, "{items} items in one record");
            assert!(serde_json::to_vec(c).unwrap().len() < 1_000_000);
        }
        // Every row once, in rank order; the removal and every split once.
        let ranks: Vec<u32> = changes
            .iter()
            .flat_map(|c| c.upserts.iter().map(|r| r.rank))
            .collect();
        assert_eq!(ranks, (1..=runners).collect::<Vec<_>>());
        let removes: Vec<&String> = changes.iter().flat_map(|c| &c.removes).collect();
        assert_eq!(removes, [&format!("p{:05}", runners + 1)]);
        let splits: Vec<i64> = changes
            .iter()
            .flat_map(|c| c.splits.iter().map(|s| s.time.0))
            .collect();
        assert_eq!(splits, (0..1500).collect::<Vec<_>>());
        // A change that fits stays one record.
        let small = vec![(("s".to_owned(), ViewRow::Standing(standing(0))), 0, 1)];
        assert_eq!(standings_changes(small, &mut seqs).len(), 1);
    }
}
