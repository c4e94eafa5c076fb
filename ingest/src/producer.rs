//! [`TrackedProducer`]: a Kafka producer that tells when what was sent is
//! durable; and [`AsyncProducer`], for a request that waits for its one
//! record (the edge).
//!
//! Every record is sent under a *ticket* (the dataflow uses its epoch). A sink
//! asks [`TrackedProducer::pending`] whether everything under a ticket has been
//! acknowledged by the broker; only then does it let the epoch complete, and
//! only a completed epoch has its input offsets committed. A delivery that
//! fails for good (after the client's own retries) is kept as
//! [`TrackedProducer::failure`], and the runtime stops instead of committing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, FutureProducer, FutureRecord, Producer, ProducerContext,
    ThreadedProducer,
};

use crate::{IngestError, KafkaConfig};

/// A group of sends whose durability is awaited together.
pub type Ticket = usize;

type Waker = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct Tracker {
    outstanding: Mutex<(BTreeMap<Ticket, usize>, Option<String>)>,
    wakers: Mutex<Vec<Waker>>,
}

impl Tracker {
    fn wake(&self) {
        for w in self.wakers.lock().expect("wakers lock").iter() {
            w();
        }
    }
}

/// Counts deliveries per ticket.
pub struct TrackingContext {
    tracker: Arc<Tracker>,
}

impl ClientContext for TrackingContext {}

impl ProducerContext for TrackingContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, ticket: usize) {
        let settled = {
            let mut guard = self.tracker.outstanding.lock().expect("tracker lock");
            let (outstanding, failure) = &mut *guard;
            if let Err((e, _)) = result {
                failure.get_or_insert_with(|| e.to_string());
            }
            let left = outstanding.get_mut(&ticket).map(|n| {
                *n -= 1;
                *n
            });
            if left == Some(0) {
                outstanding.remove(&ticket);
            }
            left == Some(0) || result.is_err()
        };
        if settled {
            self.tracker.wake();
        }
    }
}

/// A producer whose deliveries are counted per [`Ticket`].
pub struct TrackedProducer {
    inner: ThreadedProducer<TrackingContext>,
    tracker: Arc<Tracker>,
}

impl TrackedProducer {
    /// A producer for `config`'s brokers.
    pub fn new(config: &KafkaConfig) -> Result<Self, IngestError> {
        let tracker = Arc::new(Tracker::default());
        let inner = config
            .producer()
            .create_with_context(TrackingContext {
                tracker: tracker.clone(),
            })
            .map_err(IngestError::kafka("create producer"))?;
        Ok(Self { inner, tracker })
    }

    /// Calls `wake` (from the client's thread) whenever a ticket settles or a delivery fails.
    pub fn on_settled(&self, wake: impl Fn() + Send + Sync + 'static) {
        self.tracker
            .wakers
            .lock()
            .expect("wakers lock")
            .push(Box::new(wake));
    }

    /// Sends one record under `ticket`. When the client's queue is full this
    /// waits for room (backpressure) rather than dropping the record.
    pub fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: &[(&str, &[u8])],
        ticket: Ticket,
    ) -> Result<(), IngestError> {
        let owned = owned_headers(headers);
        *self
            .tracker
            .outstanding
            .lock()
            .expect("tracker lock")
            .0
            .entry(ticket)
            .or_default() += 1;
        let mut record = BaseRecord::with_opaque_to(topic, ticket)
            .payload(payload)
            .headers(owned);
        if let Some(k) = key {
            record = record.key(k);
        }
        loop {
            match self.inner.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    self.inner.poll(Duration::from_millis(5));
                }
                Err((e, _)) => {
                    let mut guard = self.tracker.outstanding.lock().expect("tracker lock");
                    if let Some(n) = guard.0.get_mut(&ticket) {
                        *n -= 1;
                        if *n == 0 {
                            guard.0.remove(&ticket);
                        }
                    }
                    return Err(IngestError::Delivery {
                        topic: topic.to_owned(),
                        reason: e.to_string(),
                    });
                }
            }
        }
    }

    /// Records sent under tickets up to and including `ticket` not yet acknowledged.
    pub fn pending(&self, ticket: Ticket) -> usize {
        let guard = self.tracker.outstanding.lock().expect("tracker lock");
        guard.0.range(..=ticket).map(|(_, n)| n).sum()
    }

    /// Records sent under exactly `ticket` not yet acknowledged.
    pub fn outstanding(&self, ticket: Ticket) -> usize {
        let guard = self.tracker.outstanding.lock().expect("tracker lock");
        guard.0.get(&ticket).copied().unwrap_or(0)
    }

    /// The first delivery that failed for good, if any.
    pub fn failure(&self) -> Option<String> {
        self.tracker
            .outstanding
            .lock()
            .expect("tracker lock")
            .1
            .clone()
    }

    /// Waits until every record sent so far is acknowledged, or `timeout`.
    pub fn flush(&self, timeout: Duration) -> Result<(), IngestError> {
        self.inner
            .flush(timeout)
            .map_err(IngestError::kafka("flush"))?;
        match self.failure() {
            None => Ok(()),
            Some(reason) => Err(IngestError::Delivery {
                topic: "(several)".into(),
                reason,
            }),
        }
    }
}

/// `headers` as the client takes them.
fn owned_headers(headers: &[(&str, &[u8])]) -> OwnedHeaders {
    headers.iter().fold(
        OwnedHeaders::new_with_capacity(headers.len()),
        |h, (key, value)| {
            h.insert(Header {
                key,
                value: Some(*value),
            })
        },
    )
}

/// A producer whose sends are awaited one by one: each returns where the
/// broker put the record. Cheap to clone (the client is shared).
#[derive(Clone)]
pub struct AsyncProducer {
    inner: FutureProducer,
}

impl AsyncProducer {
    /// A producer for `config`'s brokers (idempotent, acks from all).
    pub fn new(config: &KafkaConfig) -> Result<Self, IngestError> {
        let inner = config
            .producer()
            .create()
            .map_err(IngestError::kafka("create producer"))?;
        Ok(Self { inner })
    }

    /// Sends one record and waits, at most `timeout` in the client's queue,
    /// until the broker has it: its partition and offset, or why not.
    pub async fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: &[(&str, &[u8])],
        timeout: Duration,
    ) -> Result<(i32, i64), IngestError> {
        let mut record = FutureRecord::<[u8], [u8]>::to(topic).payload(payload);
        if let Some(key) = key {
            record = record.key(key);
        }
        if !headers.is_empty() {
            record = record.headers(owned_headers(headers));
        }
        self.inner
            .send(record, timeout)
            .await
            .map(|d| (d.partition, d.offset))
            .map_err(|(e, _)| IngestError::Kafka {
                op: "produce",
                source: e,
            })
    }
}
