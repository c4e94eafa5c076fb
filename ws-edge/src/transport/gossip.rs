//! Budgets that hold over all edges, not each: every [`INTERVAL`] an edge
//! tells the others, on `pace.edges`, how many of each token subject's
//! posts, points and refusals it gave out ([`schemas::EdgeUsage`]), and
//! takes from its own buckets what the others gave out. A subject spread
//! over several edges so gets about its one budget: the bursts add up (each
//! edge starts a subject with a full bucket), the sustained rate does not,
//! give or take what the edges give out while the news is on its way (an
//! interval plus Kafka's latency).
//!
//! Only subjects that took at least a quarter of their sustained rate in an
//! interval are told, so a fleet of well-behaved devices costs nothing
//! here; an edge's record is empty (and not sent) when nobody is busy.
//! Records older than [`STALE`] (an edge catching up) are not charged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ingest::KafkaConfig;
use ingest::producer::AsyncProducer;
use ingest::source::StaticConsumer;
use schemas::{EdgeUsage, Timestamp};

use crate::transport::bucket::{Keyed, Rate};
use crate::transport::limits::EdgeLimits;

/// How often an edge tells the others what it gave out.
pub const INTERVAL: Duration = Duration::from_millis(250);
/// Subjects told per budget in one record at most (the busiest).
pub const MOST_TOLD: usize = 10_000;
/// How soon an edge that cannot read `pace.edges` tries again.
const RETRY: Duration = Duration::from_millis(250);
/// Usage older than this when it arrives is not charged.
pub const STALE: Duration = Duration::from_secs(5);

/// The budgets kept per token subject, over all connections (and, with
/// [`start`], over all edges).
pub struct Budgets {
    /// Room posts (and creates, invites).
    pub posts: Keyed<String>,
    /// GPS points through `/ws/track`.
    pub points: Keyed<String>,
    /// Refused GPS points dead-lettered.
    pub refusals: Keyed<String>,
}

impl Budgets {
    /// The budgets of `limits`.
    pub fn new(limits: &EdgeLimits) -> Self {
        let keys = limits.budget_keys;
        Self {
            posts: Keyed::new(limits.posts, keys),
            points: Keyed::new(limits.points, keys),
            refusals: Keyed::new(limits.refusals, keys),
        }
    }

    fn named(&self) -> [(&'static str, &Keyed<String>); 3] {
        [
            ("posts", &self.posts),
            ("points", &self.points),
            ("refusals", &self.refusals),
        ]
    }
}

/// The least a subject must take in an interval to be told: a quarter of
/// the interval's sustained share, at least one.
fn worth_telling(rate: Rate) -> u32 {
    let share = rate.per_second * INTERVAL.as_secs_f64() / 4.0;
    (share.ceil() as u32).max(1)
}

/// What this edge gave out since the last call, as the others are told.
fn usage(edge: &str, budgets: &Budgets) -> EdgeUsage {
    let mut used = BTreeMap::new();
    for (name, keyed) in budgets.named() {
        let mut taken = keyed.usage(worth_telling(keyed.rate()));
        if taken.len() > MOST_TOLD {
            // The busiest first: a record stays well under Kafka's 1 MB.
            taken.sort_unstable_by_key(|t| std::cmp::Reverse(t.1));
            taken.truncate(MOST_TOLD);
        }
        let taken: BTreeMap<String, u32> = taken.into_iter().collect();
        if !taken.is_empty() {
            used.insert(name.to_owned(), taken);
        }
    }
    EdgeUsage {
        edge: edge.to_owned(),
        at: Timestamp::now(),
        used,
    }
}

/// Takes from `budgets` what another edge says it gave out.
fn charge(budgets: &Budgets, usage: &EdgeUsage) {
    for (name, keyed) in budgets.named() {
        for (subject, n) in usage.used.get(name).into_iter().flatten() {
            keyed.charge(subject, *n);
        }
    }
}

/// Starts telling the other edges what this one gives out (a task on the
/// current runtime) and hearing what they give out (a thread), until
/// `stop`. While `pace.edges` cannot be read (a deployment that predates
/// it, until `pace pipeline` creates it; a broker that just started),
/// budgets are this edge's alone, the log says so, and it tries again
/// every `RETRY`.
pub fn start(
    config: &KafkaConfig,
    producer: AsyncProducer,
    budgets: Arc<Budgets>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let edge = format!("edge-{:016x}", rand::random::<u64>());
    let topic = config.topics.edges.clone();
    let (me, tell) = (edge.clone(), budgets.clone());
    let stopped = stop.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(INTERVAL);
        while !stopped.load(Ordering::Relaxed) {
            every.tick().await;
            let u = usage(&me, &tell);
            if u.used.is_empty() {
                continue;
            }
            let payload = serde_json::to_vec(&u).expect("usage serializes");
            let sent = producer.send(
                &topic,
                Some(me.as_bytes()),
                &payload,
                &[],
                Duration::from_secs(1),
            );
            if let Err(e) = sent.await {
                tracing::debug!(error = %e, "could not tell the other edges");
            }
        }
    });
    let config = config.clone();
    std::thread::Builder::new()
        .name("pace-edge-gossip".into())
        .spawn(move || {
            // Until the topic can be read (it may not exist yet, or have
            // no leader yet on a broker that just started), budgets are
            // this edge's alone; the edge tries again soon.
            let mut warned = false;
            while !stop.load(Ordering::Relaxed) {
                match hear(&config, &edge, &budgets, &stop) {
                    Ok(()) => return,
                    Err(e) => {
                        if !warned {
                            tracing::warn!(
                                error = %ingest::error_chain(&e),
                                "not hearing the other edges yet; budgets hold per edge meanwhile"
                            );
                            warned = true;
                        }
                        std::thread::sleep(RETRY);
                    }
                }
            }
        })
        .expect("spawn gossip thread")
}

/// Charges `budgets` with what the other edges give out, until `stop`.
fn hear(
    config: &KafkaConfig,
    edge: &str,
    budgets: &Budgets,
    stop: &AtomicBool,
) -> Result<(), ingest::IngestError> {
    let topic = &config.topics.edges;
    // From the end: what edges gave out before this one started is spent.
    let mut consumer = StaticConsumer::resuming(
        config,
        &format!("pace-{edge}"),
        topic,
        0,
        1,
        &ingest::reader::ends(config, topic)?,
    )?;
    let me = std::thread::current();
    consumer.on_ready(move || me.unpark());
    let stale_ms = i64::try_from(STALE.as_millis()).unwrap_or(i64::MAX);
    while !stop.load(Ordering::Relaxed) {
        let batch = consumer.poll(1024);
        let idle = batch.is_empty();
        for raw in batch {
            match serde_json::from_slice::<EdgeUsage>(&raw.payload) {
                Ok(u) if u.edge != edge && Timestamp::now().0 - u.at.0 < stale_ms => {
                    charge(budgets, &u);
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "bad edge usage record"),
            }
        }
        if idle {
            std::thread::park_timeout(Duration::from_millis(200));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_subjects_are_told_and_charged_on_the_other_edge() {
        let limits = EdgeLimits::default();
        let (here, there) = (Budgets::new(&limits), Budgets::new(&limits));
        let dev = "dev".to_owned();
        for _ in 0..150 {
            assert!(here.points.take(&dev));
        }
        // One point from a quiet device is not worth telling.
        assert!(here.points.take(&"quiet".to_owned()));
        let u = usage("a", &here);
        assert_eq!(u.used["points"].len(), 1, "{u:?}");
        assert_eq!(u.used["points"]["dev"], 150);
        charge(&there, &u);
        assert_eq!((0..200).filter(|_| there.points.take(&dev)).count(), 50);
        assert!(usage("a", &here).used.is_empty(), "told once");
    }
}
