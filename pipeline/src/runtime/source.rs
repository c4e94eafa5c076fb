//! The Kafka source operator: reads one topic's assigned partitions into the
//! dataflow as raw records, stamped with the current epoch, and commits the
//! offsets of each epoch once every sink has made it durable.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ingest::error_chain;
use ingest::source::{RawRecord, StaticConsumer};
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::{ProbeHandle, Scope, Stream};
use timely::scheduling::{Activator, SyncActivator};

use super::shared::Shared;
use super::{Time, epoch};
use crate::snapshot::Checkpoint;

/// Most records one source activation reads.
const MAX_BATCH: usize = 4096;
/// Most epochs a source lets be in flight (read, not yet durable) before it
/// stops reading: the bound on what the dataflow holds beyond its state.
const MAX_INFLIGHT_EPOCHS: usize = 1024;

/// Epochs a source read that may still be unfinished when it starts a new
/// one. While the dataflow keeps up, every epoch is done within its tick and
/// a source starts one per tick; once it falls behind, the current epoch
/// stays open and takes in everything read until the older one is durable,
/// so a slower dataflow gets bigger epochs (a participant with three points
/// in one epoch is folded, ranked and written once) instead of a growing
/// queue of small ones whose fixed costs keep it behind.
const MAX_BEHIND: usize = 1;

/// Records an epoch held open that way takes before a source starts the
/// next one anyway: the bound on what one epoch holds in the dataflow.
const MAX_EPOCH_RECORDS: usize = 256 * 1024;

/// How long after its last commit an idle source checks that the group has
/// its offsets, and commits again if not.
const COMMIT_RETRY: Duration = Duration::from_secs(1);
/// How long that check waits for the broker.
const COMMIT_CHECK: Duration = Duration::from_millis(200);

/// How often an idle source polls its consumer even without a wake-up: a
/// wake-up that never comes (the client signals only a queue that was
/// empty) then delays records by at most this, instead of for good.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Kafka timestamps of the records one source read in one epoch, run-length
/// encoded by millisecond, for the view latency histogram.
pub(super) type Stamps = Vec<(i64, u32)>;

/// What a worker's sources read per epoch (by the views they feed), until
/// the epoch is durable.
pub(super) type Reads = Rc<RefCell<BTreeMap<Time, Vec<(&'static str, Stamps)>>>>;

/// The views (job names) a source feeds: the jobs that read its topic.
pub(super) type Readers = Rc<RefCell<Vec<&'static str>>>;

/// What every source of a worker shares.
pub(super) struct SourceContext {
    pub(super) tick: Duration,
    pub(super) shared: Arc<Shared>,
    pub(super) probe: ProbeHandle<Time>,
    pub(super) reads: Reads,
}

/// Reads `consumer`'s partitions into the dataflow; `readers` are the views
/// the topic feeds, `offsets` where the source writes what it had read at
/// each snapshot point.
pub(super) fn kafka_source<'s>(
    scope: Scope<'s, Time>,
    mut consumer: StaticConsumer,
    readers: Readers,
    mut offsets: Checkpoint<BTreeMap<i32, i64>>,
    ctx: &SourceContext,
) -> (Stream<'s, Time, Vec<RawRecord>>, Activator) {
    let topic = consumer.topic().to_owned();
    let tick = ctx.tick;
    let shared = ctx.shared.clone();
    let probe = ctx.probe.clone();
    let reads = ctx.reads.clone();
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
        let (records, bytes, epoch_records) = (
            m.ingest_records.with_label_values(&[topic.as_str()]),
            m.ingest_bytes.with_label_values(&[topic.as_str()]),
            m.pipeline_epoch_records
                .with_label_values(&[topic.as_str()]),
        );
        let mut cap = Some(cap);
        let mut inflight: VecDeque<(Time, BTreeMap<i32, i64>)> = VecDeque::new();
        // The latest durable offsets, committed again until the group has them.
        let mut durable: BTreeMap<i32, i64> = BTreeMap::new();
        let mut unverified = false;
        let mut committed_at = Instant::now();
        // Records stamped with the current epoch.
        let mut stamped = 0;
        move |output| {
            // Commit what every sink has made durable; at the very end (the
            // frontier is empty) synchronously, so nothing is left in flight.
            let finished = probe.done();
            while let Some((t, _)) = inflight.front() {
                if probe.less_equal(t) {
                    break;
                }
                let (_, o) = inflight.pop_front().expect("non-empty");
                if let Err(e) = consumer.commit(&o, finished) {
                    tracing::warn!(topic = %topic, error = %error_chain(&e), "offset commit failed");
                }
                durable = o;
                unverified = true;
                committed_at = Instant::now();
            }
            if shared.stopping() {
                // Read nothing more; let what was read drain through the sinks.
                cap = None;
            }
            let Some(c) = cap.as_mut() else { return };
            // A new epoch once the tick has passed, unless an older one this
            // source read is not durable yet: the dataflow is behind, so what
            // is read meanwhile joins the current epoch (see `MAX_BEHIND`).
            let older = inflight.iter().filter(|(t, _)| t < c.time()).count();
            let now = stamp(*c.time(), epoch(tick), older, stamped);
            if *c.time() < now {
                if stamped > 0 {
                    epoch_records.observe(stamped as f64);
                }
                c.downgrade(&now);
                stamped = 0;
            }
            // Everything read so far is stamped before `now`: at a snapshot
            // point, that is what the snapshot reflects.
            offsets.at(now, || consumer.positions());
            let mut more = false;
            if inflight.len() < MAX_INFLIGHT_EPOCHS {
                let batch = consumer.poll(MAX_BATCH);
                more = batch.len() == MAX_BATCH;
                if !batch.is_empty() {
                    stamped += batch.len();
                    records.inc_by(batch.len() as u64);
                    bytes.inc_by(batch.iter().map(|r| r.payload.len() as u64).sum());
                    let stamps = stamps(&batch);
                    let oldest = stamps.iter().map(|(ms, _)| *ms).min();
                    let mut reads = reads.borrow_mut();
                    let epoch_reads = reads.entry(now).or_default();
                    for &view in readers.borrow().iter() {
                        if let Some(oldest) = oldest {
                            shared.note_origin(view, now, oldest);
                        }
                        epoch_reads.push((view, stamps.clone()));
                    }
                    drop(reads);
                    output.session(&*c).give_iterator(batch.into_iter());
                    let positions = consumer.positions().clone();
                    match inflight.back_mut() {
                        Some((t, o)) if *t == now => *o = positions,
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

/// The epoch a source stamps what it reads next with: `current`, or the
/// tick's epoch `now` once it is later, unless `older` epochs this source
/// read are unfinished and the current one holds fewer than
/// [`MAX_EPOCH_RECORDS`] (`stamped`).
fn stamp(current: Time, now: Time, older: usize, stamped: usize) -> Time {
    if current < now && (older < MAX_BEHIND || stamped >= MAX_EPOCH_RECORDS) {
        now
    } else {
        current
    }
}

/// The Kafka timestamps of `batch`, run-length encoded.
fn stamps(batch: &[RawRecord]) -> Stamps {
    let mut out: Stamps = Vec::new();
    for ms in batch.iter().filter_map(|r| r.timestamp_ms) {
        match out.last_mut() {
            Some((last, n)) if *last == ms => *n += 1,
            _ => out.push((ms, 1)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_epoch_each_tick_while_the_dataflow_keeps_up() {
        assert_eq!(stamp(100, 150, 0, 10), 150);
        assert_eq!(stamp(150, 150, 0, 10), 150);
    }

    #[test]
    fn an_epoch_stays_open_while_an_older_one_is_unfinished_up_to_a_bound() {
        assert_eq!(stamp(100, 150, 1, 10), 100);
        assert_eq!(stamp(100, 400, 1, MAX_EPOCH_RECORDS - 1), 100);
        assert_eq!(stamp(100, 400, 1, MAX_EPOCH_RECORDS), 400);
    }
}
