//! One timely worker: restores the snapshot the workers agree on, wires
//! every job of the registry into its dataflow, then steps it until it is
//! told to stop and everything read is durable.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ingest::producer::TrackedProducer;
use schemas::Timestamp;
use timely::dataflow::ProbeHandle;

use super::error::WorkerError;
use super::inputs::Inputs;
use super::shared::Shared;
use super::sink::SinkContext;
use super::source::{Reads, SourceContext};
use super::{PipelineConfig, Time, now_ms};
use crate::snapshot::{self, Snapshots};

/// How long an idle worker parks before looking at the stop flag again.
const IDLE_PARK: Duration = Duration::from_millis(200);

/// Runs one worker until it is stopped and drained.
pub(super) fn run_worker(
    worker: &mut timely::worker::Worker,
    config: &PipelineConfig,
    shared: &Arc<Shared>,
) -> Result<(), WorkerError> {
    let index = worker.index();
    if config.operator_seconds {
        super::profile::register(worker);
    }
    shared.join();
    let snaps = open_snapshots(worker, config);
    let producer =
        Rc::new(TrackedProducer::new(&config.kafka).map_err(|e| WorkerError::kafka(&e))?);
    let probe = ProbeHandle::<Time>::new();
    let reads: Reads = Rc::default();
    let wired = worker.dataflow::<Time, _, _>(|scope| {
        let sources = SourceContext {
            tick: config.tick,
            shared: shared.clone(),
            probe: probe.clone(),
            reads: reads.clone(),
            producer: producer.clone(),
            bindings: config
                .epoch_bindings
                .then(|| config.kafka.topics.bindings.clone()),
        };
        let sinks = SinkContext {
            producer: producer.clone(),
            shared: shared.clone(),
            tick: config.tick,
            topics: config.kafka.topics.clone(),
            kafka: config.kafka.clone(),
            restored: snaps
                .as_ref()
                .and_then(|s| s.restored())
                .map(|(point, _)| point),
        };
        let mut inputs = Inputs::new(scope, config, snaps.clone(), sources, sinks);
        for wire in config.jobs {
            wire(&mut inputs);
        }
        inputs.finish(&probe)
    })?;

    let m = observability::metrics();
    let frontier_gauge = m.pipeline_frontier.with_label_values(&[&index.to_string()]);
    let frontier_lag = m
        .pipeline_frontier_lag
        .with_label_values(&[&index.to_string()]);
    let view_latency: Vec<_> = wired
        .views
        .iter()
        .map(|v| (*v, m.view_latency.with_label_values(&[v])))
        .collect();
    let mut stopping = false;
    let mut next_advance = Instant::now();
    while !probe.done() {
        if shared.stopping() && !stopping {
            stopping = true;
            for a in &wired.activators {
                a.activate();
            }
        }
        if let Some(reason) = producer.failure() {
            shared.fail(WorkerError::Delivery(reason));
        }
        // While data is in flight anywhere, every source is woken once a
        // tick: it closes its epoch if any source read records into it (an
        // idle source would otherwise hold the frontier back), and keeps it
        // open if none did (see `source::cut`).
        let park = if shared.busy() {
            let now = Instant::now();
            if now >= next_advance {
                for a in &wired.activators {
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
            // (Between epochs that carry data the frontier stays where the
            // last one left it: not behind, only nothing new to close.)
            let behind = if shared.busy() && shared.wanted_past(t).is_some() {
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
            s.finish(done);
        }
        let mut reads = reads.borrow_mut();
        if reads.first_key_value().is_some_and(|(t, _)| *t < done) {
            let later = reads.split_off(&done);
            for (view, stamps) in std::mem::replace(&mut *reads, later)
                .into_values()
                .flatten()
            {
                let Some((_, h)) = view_latency.iter().find(|(v, _)| *v == view) else {
                    continue;
                };
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
    // Parts written in the last steps may still be with the writer thread.
    if let Some(s) = &snaps {
        s.drain();
        s.finish(Time::MAX);
    }
    producer
        .flush(Duration::from_secs(30))
        .map_err(|e| WorkerError::kafka(&e))
}

/// This worker's snapshots, restoring from the latest point every worker
/// has complete; `None` with snapshots off.
fn open_snapshots(
    worker: &mut timely::worker::Worker,
    config: &PipelineConfig,
) -> Option<Rc<Snapshots>> {
    let every = config.snapshot_every?;
    let (index, peers) = (worker.index(), worker.peers());
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
    if index == first {
        report_restore(&s, peers);
    }
    Some(Rc::new(s))
}

/// Logs and shows in `/metrics` what a start restored, and with which
/// worker counts; when no snapshot could be used, why the views are being
/// rebuilt.
fn report_restore(s: &Snapshots, peers: usize) {
    let latest = s.latest_any();
    let taken = match (s.restored(), &latest) {
        (Some((_, taken)), _) => taken.to_string(),
        (None, Some((_, mark))) => mark.split_whitespace().next().unwrap_or("?").to_owned(),
        (None, None) => "none".to_owned(),
    };
    let workers = peers.to_string();
    observability::metrics()
        .snapshot_restored
        .with_label_values(&[taken.as_str(), workers.as_str()])
        .set(s.restored().map_or(0.0, |(p, _)| p as f64 / 1000.0));
    match (s.restored(), latest) {
        (Some((point, taken)), _) if taken == peers => tracing::info!(
            point,
            workers = peers,
            "restoring the views from a snapshot taken with as many workers"
        ),
        (Some((point, taken)), _) => tracing::info!(
            point,
            taken_with = taken,
            workers = peers,
            "restoring the views from a snapshot taken with another worker count: each worker reads what it owns of every worker's parts"
        ),
        (None, Some((latest, mark))) if s.is_current(&mark) => tracing::warn!(
            point = latest,
            workers = peers,
            "no snapshot is complete on every worker: the views are rebuilt from the start of retention"
        ),
        (None, Some((latest, mark))) => tracing::warn!(
            point = latest,
            taken_with = %mark,
            workers = peers,
            "the latest snapshot was taken with another worker count, but not every worker's parts are in this data directory (copy each process's snapshots/<point> here), or with another format: the views are rebuilt from the start of retention"
        ),
        (None, None) => tracing::info!(
            workers = peers,
            "no snapshot: the views are built from the start of retention"
        ),
    }
}
