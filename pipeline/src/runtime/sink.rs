//! The sinks: one generic operator ([`kafka_sink`]) that produces each
//! complete epoch's records to Kafka and holds the epoch open until the
//! broker has them all, and its two uses: a job's changelog
//! ([`changelog`]) and the dead letters ([`dead_letters`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use differential_dataflow::VecCollection;
use ingest::producer::TrackedProducer;
use ingest::reader::{Since, read_to_end};
use ingest::source::DeadLetter;
use ingest::{KafkaConfig, error_chain};
use observability::traces::{Step, TraceParent};
use opentelemetry::trace::SpanKind;
use schemas::Topics;
use schemas::topics::EPOCH_HEADER;
use sinks::SinkError;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::{Exchange, ParallelizationContract, Pipeline};
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::operator::Operator;

use super::error::WorkerError;
use super::shared::Shared;
use super::{Time, hash};
use crate::job::Job;
use crate::snapshot::Checkpoint;

/// What every sink of a worker shares.
#[derive(Clone)]
pub(super) struct SinkContext {
    pub(super) producer: Rc<TrackedProducer>,
    pub(super) shared: Arc<Shared>,
    pub(super) tick: Duration,
    pub(super) topics: Topics,
    pub(super) kafka: KafkaConfig,
    /// The snapshot point the jobs were restored from, if any.
    pub(super) restored: Option<Time>,
}

/// What a [`kafka_sink`] does with the records of a complete epoch.
trait Produce<D> {
    /// Every epoch before `upto` is sent (called before an epoch's records
    /// are sent, and whenever the frontier moves): the moment to write what
    /// the sink keeps as of a snapshot point.
    fn sent_before(&mut self, _upto: Time) {}
    /// Produces one epoch's `items` under the epoch's `ticket`.
    fn send(
        &mut self,
        producer: &TrackedProducer,
        items: Vec<D>,
        ticket: usize,
    ) -> Result<(), SinkError>;
}

/// The changelog of job `J`: each epoch's updates of its rows, exchanged by
/// key, consolidated (unless the job gives them so, [`Job::CONSOLIDATED`])
/// and encoded by [`Job::encode`], produced to
/// [`Job::changelog`] keyed by view key with the epoch and its origin. What
/// the encoder keeps is written at every snapshot point through `encoder`.
///
/// A job restored from a snapshot makes again, epoch by epoch, the very
/// changes it made after the snapshot before it stopped (the epochs follow
/// their bindings): the sink reads what the changelog holds of those
/// epochs ([`Written`]) and writes each such change only once.
pub(super) fn changelog<'s, J: Job>(
    rows: VecCollection<'s, Time, (String, J::Row)>,
    mut encoder: Checkpoint<J::Encoder>,
    ctx: &SinkContext,
) -> Stream<'s, Time, Vec<()>> {
    let topic = J::changelog(&ctx.topics).to_owned();
    let written = match ctx.restored {
        Some(point) => Written::load(&ctx.kafka, &topic, point),
        None => Written::default(),
    };
    let sink = Changelog::<J> {
        topic,
        shared: ctx.shared.clone(),
        state: encoder.take_restored().unwrap_or_default(),
        encoder,
        written,
    };
    let name = format!("Changelog({})", J::NAME);
    let time_of = |u: &((String, J::Row), Time, isize)| Some(u.1);
    if J::KEYED {
        kafka_sink(rows.inner, Pipeline, &name, time_of, ctx, sink)
    } else {
        let by_key = Exchange::new(|u: &((String, J::Row), Time, isize)| hash(&(u.0).0));
        kafka_sink(rows.inner, by_key, &name, time_of, ctx, sink)
    }
}

struct Changelog<J: Job> {
    topic: String,
    shared: Arc<Shared>,
    state: J::Encoder,
    encoder: Checkpoint<J::Encoder>,
    written: Written,
}

/// How long a restored sink may take to read what its changelog holds.
const WRITTEN_TIMEOUT: Duration = Duration::from_secs(120);

/// What a changelog already holds of the epochs from a snapshot point on:
/// per epoch and key, the hashes of the payloads written, in order. Each is
/// skipped once when the restored job makes it again, and an epoch's are
/// forgotten once it is sent, so this holds at most what was written
/// between the snapshot and the stop.
#[derive(Default)]
struct Written(BTreeMap<Time, HashMap<String, VecDeque<u64>>>);

impl Written {
    /// What `topic` holds of the epochs from `point` on (records with the
    /// epoch header; they were produced after their epoch began, so after
    /// `point`). A changelog that cannot be read is logged and skips
    /// nothing: changes may then be written twice, never lost.
    fn load(kafka: &KafkaConfig, topic: &str, point: Time) -> Self {
        let mut this = Self::default();
        let mut n = 0;
        let read = read_to_end(
            kafka,
            topic,
            Since::Time(point as i64),
            WRITTEN_TIMEOUT,
            |r| {
                let Some(epoch) = r.header(EPOCH_HEADER).and_then(|e| e.parse::<Time>().ok())
                else {
                    return;
                };
                if epoch < point {
                    return;
                }
                let key =
                    String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned();
                this.0
                    .entry(epoch)
                    .or_default()
                    .entry(key)
                    .or_default()
                    .push_back(hash(&r.payload));
                n += 1;
            },
        );
        if let Err(e) = read {
            tracing::warn!(topic, error = %error_chain(&e), "the changelog's latest records could not be read: changes written before the stop may be written again");
            return Self::default();
        }
        if n > 0 {
            tracing::info!(
                topic,
                changes = n,
                point,
                "changes written after the snapshot point are not written again"
            );
        }
        this
    }

    /// What is held of epoch `t`, forgetting it and every earlier epoch.
    fn take(&mut self, t: Time) -> HashMap<String, VecDeque<u64>> {
        let later = self.0.split_off(&(t + 1));
        let mut upto = std::mem::replace(&mut self.0, later);
        upto.remove(&t).unwrap_or_default()
    }
}

impl<J: Job> Produce<((String, J::Row), Time, isize)> for Changelog<J> {
    fn sent_before(&mut self, upto: Time) {
        let state = &self.state;
        self.encoder.at(upto, || state);
    }

    fn send(
        &mut self,
        producer: &TrackedProducer,
        updates: Vec<((String, J::Row), Time, isize)>,
        ticket: usize,
    ) -> Result<(), SinkError> {
        let epoch = ticket as Time;
        let origin = self.shared.origin(J::NAME, epoch);
        let flat: Vec<_> = updates.into_iter().map(|(d, _, r)| (d, r)).collect();
        let flat = if J::CONSOLIDATED {
            flat
        } else {
            consolidate_rows(flat)
        };
        let mut written = self.written.take(epoch);
        let traces: HashMap<String, TraceParent> = if J::TRACED {
            (flat.iter())
                .filter(|(_, diff)| *diff > 0)
                .filter_map(|((key, row), _)| Some((key.clone(), J::trace(row)?)))
                .collect()
        } else {
            HashMap::new()
        };
        J::encode(flat, &mut self.state)
            .iter()
            .try_for_each(|(key, change)| {
                let payload = serde_json::to_vec(change).expect("view records serialize");
                if let Some(held) = written.get_mut(key)
                    && held.front() == Some(&hash(&payload))
                {
                    held.pop_front();
                    observability::metrics()
                        .changelog_skipped
                        .with_label_values(&[J::NAME])
                        .inc();
                    return Ok(());
                }
                // A traced change: its produce is a span, and the record
                // carries the trace on to the edges.
                let trace = traces.get(key).map(|&parent| {
                    let step = Step {
                        parent,
                        partition: 0,
                        offset: 0,
                    };
                    step.kafka("kafka.produce", SpanKind::Producer, &self.topic);
                    step.after("kafka.produce").to_string()
                });
                sinks::kafka::send_view_change(
                    producer,
                    &self.topic,
                    J::NAME,
                    key,
                    &payload,
                    epoch,
                    origin,
                    ticket,
                    trace.as_deref(),
                )
            })
    }
}

/// `updates` consolidated as differential's `consolidate` does (sorted, equal
/// rows' diffs summed, zeros dropped), but sorting their indices rather than
/// the rows: a view row is a few hundred bytes, and moving them through a
/// sort was a measured 13% of the pipeline in a latency run.
fn consolidate_rows<D: Ord>(updates: Vec<(D, isize)>) -> Vec<(D, isize)> {
    let mut order: Vec<usize> = (0..updates.len()).collect();
    order.sort_unstable_by(|&a, &b| updates[a].0.cmp(&updates[b].0));
    let mut slots: Vec<Option<(D, isize)>> = updates.into_iter().map(Some).collect();
    let mut out: Vec<(D, isize)> = Vec::with_capacity(slots.len());
    for i in order {
        let (d, r) = slots[i].take().expect("every index once");
        match out.last_mut() {
            Some((last, sum)) if *last == d => *sum += r,
            _ => out.push((d, r)),
        }
    }
    out.retain(|(_, r)| *r != 0);
    out
}

/// The dead letters of every source, to `pace.dlq`.
pub(super) fn dead_letters<'s>(
    letters: Stream<'s, Time, Vec<DeadLetter>>,
    ctx: &SinkContext,
) -> Stream<'s, Time, Vec<()>> {
    let sink = DeadLetters(ctx.topics.clone());
    kafka_sink(letters, Pipeline, "DeadLetters", |_| None, ctx, sink)
}

struct DeadLetters(Topics);

impl Produce<DeadLetter> for DeadLetters {
    fn send(
        &mut self,
        producer: &TrackedProducer,
        letters: Vec<DeadLetter>,
        ticket: usize,
    ) -> Result<(), SinkError> {
        letters
            .iter()
            .try_for_each(|l| sinks::kafka::send_dead_letter(producer, &self.0, l, ticket))
    }
}

/// A sink that produces each epoch's records to Kafka once the epoch is
/// complete (`sink` gets them and the epoch's ticket), and holds the epoch
/// open until the broker has acknowledged all of them. A send that fails
/// stops the pipeline. `time_of` gives a record's epoch where it differs
/// from its capability's.
fn kafka_sink<'s, D, P>(
    stream: Stream<'s, Time, Vec<D>>,
    pact: P,
    name: &str,
    time_of: fn(&D) -> Option<Time>,
    ctx: &SinkContext,
    mut sink: impl Produce<D> + 'static,
) -> Stream<'s, Time, Vec<()>>
where
    D: Clone + 'static,
    P: ParallelizationContract<Time, Vec<D>>,
{
    let scope = stream.scope();
    let (producer, shared, tick) = (ctx.producer.clone(), ctx.shared.clone(), ctx.tick);
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
                    sink.sent_before(t);
                    // Once a delivery failed (an epoch binding, say), the
                    // pipeline stops and sends nothing more: what it has not
                    // made durable is done again after the restart.
                    if t > 0
                        && producer.failure().is_none()
                        && let Err(e) = sink.send(&producer, items, ticket)
                    {
                        shared.fail(WorkerError::Delivery(error_chain(&e)));
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
                sink.sent_before(upto);
            }
            if !held.is_empty() {
                activator.activate_after(tick);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::consolidate_rows;

    #[test]
    fn consolidating_by_index_equals_differentials_consolidate() {
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..200 {
            let n = rng.random_range(0..60);
            let updates: Vec<((String, u8), isize)> = (0..n)
                .map(|_| {
                    let row = (
                        format!("r{}", rng.random_range(0..5)),
                        rng.random_range(0..4),
                    );
                    (row, rng.random_range(-2..3i64) as isize)
                })
                .collect();
            let mut want = updates.clone();
            differential_dataflow::consolidation::consolidate(&mut want);
            assert_eq!(consolidate_rows(updates), want);
        }
    }
}
