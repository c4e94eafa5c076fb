//! The Kafka source operator: reads one topic's assigned partitions into the
//! dataflow as raw records, stamped with their epoch, and commits the
//! offsets of each epoch once every sink has made it durable.
//!
//! Offsets that an earlier run already bound to epochs (see [`super::bindings`])
//! are read into those epochs; past them, the source cuts new epochs by
//! the wall clock and records each one's binding before the epoch can
//! complete.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ingest::error_chain;
use ingest::producer::{Ticket, TrackedProducer};
use ingest::source::{RawRecord, StaticConsumer};
use schemas::EpochBinding;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::{ProbeHandle, Scope, Stream};
use timely::scheduling::{Activator, SyncActivator};

use super::bindings::Bound;
use super::shared::Shared;
use super::{Time, epoch};
use crate::snapshot::{Checkpoint, Offsets};

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

/// Records a source following recorded epochs lets be in the dataflow
/// unfinished before it stops reading: recorded epochs are cut already, so
/// nothing else keeps it from reading a whole backlog into the dataflow.
const MAX_REPLAY_RECORDS: usize = 2 * MAX_EPOCH_RECORDS;

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
    /// Where the epoch bindings go, and the topic that holds them (`None`:
    /// none are recorded, see [`super::PipelineConfig::epoch_bindings`]).
    pub(super) producer: Rc<TrackedProducer>,
    pub(super) bindings: Option<String>,
}

/// Reads `consumer`'s partitions into the dataflow; `readers` are the views
/// the topic feeds, `offsets` where the source writes what it had read at
/// each snapshot point, `bound` the recorded epochs it follows first.
pub(super) fn kafka_source<'s>(
    scope: Scope<'s, Time>,
    mut consumer: StaticConsumer,
    readers: Readers,
    mut offsets: Checkpoint<Offsets>,
    mut bound: Bound,
    ctx: &SourceContext,
) -> (Stream<'s, Time, Vec<RawRecord>>, Activator) {
    let topic = consumer.topic().to_owned();
    let tick = ctx.tick;
    let shared = ctx.shared.clone();
    let probe = ctx.probe.clone();
    let reads = ctx.reads.clone();
    let producer = ctx.producer.clone();
    let bindings = ctx.bindings.clone();
    let mut activator_out = None;
    let stream = source(scope, &format!("Kafka({topic})"), |cap, info| {
        let activator = scope.activator_for(info.address.clone());
        activator_out = Some(activator.clone());
        let sync: Mutex<SyncActivator> =
            Mutex::new(scope.worker().sync_activator_for(info.address.to_vec()));
        // Set when the consumer's queue gets something: only then (or after
        // a full batch, or `IDLE_POLL`) is it worth polling. An activation
        // that only moves the epoch on then costs no poll of the client,
        // which is most of an idle source's cost (`EMPTY_POLLS` of them).
        let ready = Arc::new(AtomicBool::new(true));
        let wake = ready.clone();
        consumer.on_ready(move || {
            wake.store(true, Ordering::Release);
            let _ = sync.lock().expect("activator lock").activate();
        });
        let mut polled_at = Instant::now();
        let settled: Mutex<SyncActivator> =
            Mutex::new(scope.worker().sync_activator_for(info.address.to_vec()));
        producer.on_settled(move || {
            let _ = settled.lock().expect("activator lock").activate();
        });
        let m = observability::metrics();
        let (records, bytes, epoch_records) = (
            m.ingest_records.with_label_values(&[topic.as_str()]),
            m.ingest_bytes.with_label_values(&[topic.as_str()]),
            m.pipeline_epoch_records
                .with_label_values(&[topic.as_str()]),
        );
        let closed = m.pipeline_epochs.with_label_values(&[topic.as_str()]);
        let (written, followed) = (
            m.bindings_written.with_label_values(&[topic.as_str()]),
            m.bindings_followed.with_label_values(&[topic.as_str()]),
        );
        let mut cap = Some(cap);
        let mut inflight: VecDeque<(Time, BTreeMap<i32, i64>)> = VecDeque::new();
        // The latest durable offsets, committed again until the group has them.
        let mut durable: BTreeMap<i32, i64> = BTreeMap::new();
        let mut unverified = false;
        let mut committed_at = Instant::now();
        // Records stamped with the current epoch.
        let mut stamped = 0;
        // Per partition, the next offset after what was given to the dataflow.
        let mut emitted: BTreeMap<i32, i64> = consumer.positions().clone();
        // Where a restored source resumes is durable progress already: the
        // group has it once the restored state (time 0) has gone through.
        if !emitted.is_empty() {
            inflight.push_back((0, emitted.clone()));
        }
        // The partitions read in the current (new) epoch, and how far.
        let mut touched: BTreeMap<i32, i64> = BTreeMap::new();
        // Closed epochs whose binding the broker does not have yet: held
        // open, so that no output of theirs is durable before it.
        let mut unbound: Vec<Capability<Time>> = Vec::new();
        // Records read past their partition's bindings while another
        // partition still follows its own (that partition is paused).
        let mut held: Vec<RawRecord> = Vec::new();
        let mut paused: BTreeSet<i32> = BTreeSet::new();
        // Records given to the dataflow per recorded epoch, until it is done.
        let mut replayed: BTreeMap<Time, usize> = BTreeMap::new();
        // New epochs come after every bound one.
        let floor = bound.last().map_or(0, |t| t + 1);
        // Whether the last poll filled a batch: more may be queued.
        let mut full = true;
        move |output| {
            // Commit what every sink has made durable; at the very end (the
            // frontier is empty) synchronously, so nothing is left in flight.
            let finished = probe.done();
            while let Some((t, _)) = inflight.front() {
                if probe.less_equal(t) {
                    break;
                }
                let (_, o) = inflight.pop_front().expect("non-empty");
                if producer.failure().is_some() {
                    continue;
                }
                if let Err(e) = consumer.commit(&o, finished) {
                    tracing::warn!(topic = %topic, error = %error_chain(&e), "offset commit failed");
                }
                durable = o;
                unverified = true;
                committed_at = Instant::now();
            }
            while let Some((&t, _)) = replayed.first_key_value() {
                if probe.less_equal(&t) {
                    break;
                }
                replayed.pop_first();
            }
            // Release the epochs whose bindings are durable (all of them
            // once a delivery failed: the pipeline stops, and its sinks
            // send nothing more).
            unbound.retain(|c| {
                producer.failure().is_none() && producer.outstanding(ticket(*c.time())) > 0
            });
            if shared.stopping() {
                // Read nothing more; let what was read drain through the sinks.
                if let Some(c) = cap.take()
                    && let Some(c) = bind(&producer, &bindings, &topic, c, &mut touched)
                {
                    written.inc();
                    unbound.push(c);
                }
            }
            let Some(c) = cap.as_mut() else { return };
            let mut more = false;
            let mut fresh: Vec<RawRecord> = Vec::new();
            if bound.replaying() {
                // Follow the recorded epochs: the source's time is the
                // earliest one a record still to read is bound to.
                if let Some(next) = bound.next()
                    && *c.time() < next
                {
                    c.downgrade(&next);
                    closed.inc();
                    inflight.push_back((next - 1, bound.covered(next)));
                }
                offsets.at_each(*c.time(), bound.span(), |point| {
                    Offsets(bound.covered(point))
                });
                let unfinished: usize = replayed.values().sum();
                let reading =
                    inflight.len() < MAX_INFLIGHT_EPOCHS && unfinished < MAX_REPLAY_RECORDS;
                if reading {
                    let batch = consumer.poll(MAX_BATCH);
                    more = batch.len() == MAX_BATCH;
                    let mut by_epoch: BTreeMap<Time, Vec<RawRecord>> = BTreeMap::new();
                    for r in batch {
                        match bound.epoch_of(r.partition, r.offset) {
                            Some(t) => by_epoch.entry(t).or_default().push(r),
                            None => {
                                if paused.insert(r.partition)
                                    && let Err(e) = consumer.pause(r.partition)
                                {
                                    tracing::warn!(topic = %topic, error = %error_chain(&e), "pause failed");
                                }
                                held.push(r);
                            }
                        }
                    }
                    for (t, batch) in by_epoch {
                        note(&batch, t, &readers, &reads, &shared);
                        records.inc_by(batch.len() as u64);
                        followed.inc_by(batch.len() as u64);
                        bytes.inc_by(batch.iter().map(|r| r.payload.len() as u64).sum());
                        for r in &batch {
                            emitted.insert(r.partition, r.offset + 1);
                        }
                        *replayed.entry(t).or_default() += batch.len();
                        shared.read_into(t);
                        output
                            .session(&c.delayed(&t))
                            .give_iterator(batch.into_iter());
                        shared.data_in_flight();
                    }
                }
                if bound.replaying() {
                    // (While too much is unfinished, the tick wakes it.)
                    if let Some(next) = bound.next()
                        && *c.time() < next
                        && reading
                    {
                        more = true;
                    }
                } else {
                    // Every partition is past its bindings: read on (what
                    // was held back goes to the first new epoch), and commit
                    // all the bound offsets once the last bound epoch is
                    // durable.
                    if let Some(last) = bound.last() {
                        inflight.push_back((last, bound.covered(Time::MAX)));
                        // What it gave to recorded epochs after its own
                        // time is in the offsets of the points up to them.
                        offsets.at_each(last, bound.span(), |point| Offsets(bound.covered(point)));
                    }
                    if !paused.is_empty()
                        && let Err(e) = consumer.resume()
                    {
                        tracing::warn!(topic = %topic, error = %error_chain(&e), "resume failed");
                    }
                    paused.clear();
                    more = true;
                }
            } else {
                // Read first: what was read is stamped with the epoch cut
                // below, not with one left open since the last records.
                fresh = std::mem::take(&mut held);
                if inflight.len() < MAX_INFLIGHT_EPOCHS
                    && worth_polling(&ready, &mut polled_at, full)
                {
                    let polled = consumer.poll(MAX_BATCH);
                    more = polled.len() == MAX_BATCH;
                    full = more;
                    fresh.extend(polled);
                }
                // A new epoch once the tick has passed, unless an older one this
                // source read is not durable yet: the dataflow is behind, so what
                // is read meanwhile joins the current epoch (see `MAX_BEHIND`).
                let older = inflight.iter().filter(|(t, _)| t < c.time()).count();
                let now = if *c.time() < floor {
                    epoch(tick).max(floor)
                } else {
                    let due = epoch(tick);
                    // Another source read into an epoch this one has to
                    // pass: it does once the tick's epoch is past it (not
                    // within that epoch's own tick: that would take two
                    // cuts, and every source reading in that tick joins
                    // the same epoch).
                    let passes = shared.wanted_past(*c.time()).is_some_and(|w| due >= w);
                    let wanted = stamped > 0 || !fresh.is_empty() || passes || !shared.busy();
                    cut(*c.time(), due, older, stamped, wanted)
                };
                if *c.time() < now {
                    closed.inc();
                    if stamped > 0 {
                        epoch_records.observe(stamped as f64);
                    }
                    if let Some(closed) =
                        bind(&producer, &bindings, &topic, c.clone(), &mut touched)
                    {
                        written.inc();
                        unbound.push(closed);
                    }
                    c.downgrade(&now);
                    stamped = 0;
                }
                // Everything read so far is stamped before `now`: at a snapshot
                // point, that is what the snapshot reflects.
                // (And at every point since the one it wrote before: it
                // gave nothing to the times in between.)
                offsets.at(now, || Offsets(emitted.clone()));
            }
            if !fresh.is_empty() {
                let now = *c.time();
                stamped += fresh.len();
                records.inc_by(fresh.len() as u64);
                bytes.inc_by(fresh.iter().map(|r| r.payload.len() as u64).sum());
                note(&fresh, now, &readers, &reads, &shared);
                for r in &fresh {
                    emitted.insert(r.partition, r.offset + 1);
                    touched.insert(r.partition, r.offset + 1);
                }
                output.session(&*c).give_iterator(fresh.into_iter());
                shared.read_into(now);
                match inflight.back_mut() {
                    Some((t, o)) if *t == now => *o = emitted.clone(),
                    _ => inflight.push_back((now, emitted.clone())),
                }
                shared.data_in_flight();
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

/// The producer ticket of epoch `t`'s records (its bindings and its
/// changelog records alike).
fn ticket(t: Time) -> Ticket {
    t as Ticket
}

/// Closes the epoch of `cap` in which the source read up to `touched` (per
/// partition, if anything): sends its binding and returns the capability,
/// to hold until the broker has it. A send that fails stops the pipeline.
fn bind(
    producer: &TrackedProducer,
    bindings: &Option<String>,
    topic: &str,
    cap: Capability<Time>,
    touched: &mut BTreeMap<i32, i64>,
) -> Option<Capability<Time>> {
    let Some(bindings) = bindings.as_deref().filter(|_| !touched.is_empty()) else {
        touched.clear();
        return None;
    };
    let binding = EpochBinding {
        topic: topic.to_owned(),
        epoch: *cap.time(),
        ends: std::mem::take(touched),
    };
    let payload = serde_json::to_vec(&binding).expect("a binding serializes");
    if let Err(e) = producer.send(
        bindings,
        Some(topic.as_bytes()),
        &payload,
        &[],
        ticket(binding.epoch),
    ) {
        tracing::error!(topic, error = %error_chain(&e), "epoch binding not sent");
    }
    Some(cap)
}

/// Notes what `batch`, read into epoch `t`, feeds: its Kafka timestamps for
/// the view latency histograms, its oldest as the origin of the views'
/// changes.
fn note(batch: &[RawRecord], t: Time, readers: &Readers, reads: &Reads, shared: &Shared) {
    let stamps = stamps(batch);
    let oldest = stamps.iter().map(|(ms, _)| *ms).min();
    let mut reads = reads.borrow_mut();
    let epoch_reads = reads.entry(t).or_default();
    for &view in readers.borrow().iter() {
        if let Some(oldest) = oldest {
            shared.note_origin(view, t, oldest);
        }
        epoch_reads.push((view, stamps.clone()));
    }
}

/// Whether a source polls its consumer now: something was queued since the
/// last poll (`ready`, taken), the last poll was `full`, or [`IDLE_POLL`]
/// has passed since it polled (a wake-up that never came: the client
/// signals only a queue that was empty).
fn worth_polling(ready: &AtomicBool, polled_at: &mut Instant, full: bool) -> bool {
    let woken = ready.swap(false, Ordering::AcqRel);
    if woken || full || polled_at.elapsed() >= IDLE_POLL {
        *polled_at = Instant::now();
        true
    } else {
        false
    }
}

/// The epoch a source stamps what it reads next with: `current`, or the
/// tick's epoch `now` once it is later, if the current epoch is `wanted`
/// closed, unless `older` epochs this source read are unfinished and the
/// current one holds fewer than [`MAX_EPOCH_RECORDS`] (`stamped`).
///
/// An epoch is wanted closed when it holds records of this source or of
/// another one (which can only be done once every source has moved past
/// it), when records were just read (they go to the tick's epoch, not to
/// one left open since the last ones: a burst after a quiet spell is
/// then one epoch, not two), or while nothing is in flight (the idle pipeline's frontier moves
/// with the clock, so snapshots are taken). While data flows, an epoch
/// with nothing in it is not cut: a tick that read nothing costs no
/// progress through the dataflow, so epochs follow the data, not the
/// clock, and a short tick is cheap.
fn cut(current: Time, now: Time, older: usize, stamped: usize, wanted: bool) -> Time {
    if current < now && wanted && (older < MAX_BEHIND || stamped >= MAX_EPOCH_RECORDS) {
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
    fn a_source_polls_only_when_woken_after_a_full_batch_or_once_a_while() {
        let ready = AtomicBool::new(true);
        let mut at = Instant::now();
        assert!(worth_polling(&ready, &mut at, false), "woken");
        assert!(
            !worth_polling(&ready, &mut at, false),
            "the wake-up is taken"
        );
        assert!(
            worth_polling(&ready, &mut at, true),
            "the last batch was full"
        );
        ready.store(true, Ordering::Release);
        assert!(worth_polling(&ready, &mut at, false));
        let mut long_ago = Instant::now() - IDLE_POLL;
        assert!(
            worth_polling(&ready, &mut long_ago, false),
            "no wake-up for a while"
        );
        assert!(!worth_polling(&ready, &mut long_ago, false));
    }

    #[test]
    fn a_new_epoch_each_tick_while_the_dataflow_keeps_up() {
        assert_eq!(cut(100, 150, 0, 10, true), 150);
        assert_eq!(cut(150, 150, 0, 10, true), 150);
    }

    #[test]
    fn an_epoch_stays_open_while_an_older_one_is_unfinished_up_to_a_bound() {
        assert_eq!(cut(100, 150, 1, 10, true), 100);
        assert_eq!(cut(100, 400, 1, MAX_EPOCH_RECORDS - 1, true), 100);
        assert_eq!(cut(100, 400, 1, MAX_EPOCH_RECORDS, true), 400);
    }

    /// While data flows, a tick in which no source read anything cuts no
    /// epoch: it would cost progress through the whole dataflow and carry
    /// nothing.
    #[test]
    fn an_epoch_nothing_was_read_into_is_not_cut_while_data_flows() {
        assert_eq!(cut(100, 150, 0, 0, false), 100);
        assert_eq!(cut(100, 400, 0, 0, false), 100);
    }
}
