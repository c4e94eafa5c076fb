//! `StaticConsumer` against a real broker: one wake-up, one poll, every
//! record queued by then. librdkafka calls the wake-up only when its queue
//! goes from empty to not empty, and the queue also carries statistics and
//! commit results; a poll that stopped at one of those would leave the
//! records behind it unread until something else woke the consumer, which
//! for an idle pipeline might be never. And an idle source lets the broker
//! hold its fetch instead of asking a hundred times a second.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pace_ingest::KafkaConfig;
use pace_ingest::producer::TrackedProducer;
use pace_ingest::source::StaticConsumer;

fn brokers() -> String {
    std::env::var("PACE_TEST_BROKERS").expect("PACE_TEST_BROKERS is not set: run `make test`")
}

/// Waits until `f` holds, or panics after `within`.
fn until(what: &str, within: Duration, f: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Topics of their own (one partition each) on the test broker: the
/// configuration and the chat topic's name.
fn fresh(prefix: &str) -> (KafkaConfig, String) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let kafka = KafkaConfig::new(brokers()).with_topic_prefix(&format!("{prefix}-{nanos}."));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(pace_ingest::admin::ensure_topics(&kafka, 1))
        .unwrap();
    let topic = kafka.topics.chat.clone();
    (kafka, topic)
}

#[test]
fn records_behind_a_statistics_event_are_read_by_the_poll_after_one_wake_up() {
    let (kafka, topic) = fresh("test-consumer");
    let mut consumer = StaticConsumer::new(&kafka, "test-consumer", &topic, 0, 1).unwrap();
    let woken = Arc::new(AtomicUsize::new(0));
    let w = woken.clone();
    consumer.on_ready(move || {
        w.fetch_add(1, Ordering::SeqCst);
    });
    assert!(consumer.poll(10).is_empty());
    // A statistics event (every second) lands in the empty queue: the one
    // wake-up. Nothing polls it away.
    until("a statistics event", Duration::from_secs(30), || {
        woken.load(Ordering::SeqCst) > 0
    });
    let producer = TrackedProducer::new(&kafka).unwrap();
    for i in 0..100u32 {
        producer
            .send(&topic, Some(b"k"), format!("{i}").as_bytes(), &[], 1)
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    // The records are fetched behind the statistics event; the queue was not
    // empty, so no second wake-up comes. Give the client time to fetch them.
    let fetched = Instant::now() + Duration::from_secs(5);
    while Instant::now() < fetched && woken.load(Ordering::SeqCst) == 1 {
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = consumer.poll(4096);
    assert_eq!(
        got.len(),
        100,
        "one poll after the wake-up reads everything queued"
    );
}

/// Counts the fetch requests a consumer sent, from librdkafka's statistics.
struct Fetches(Arc<AtomicUsize>);

impl rdkafka::ClientContext for Fetches {
    fn stats(&self, statistics: rdkafka::Statistics) {
        let sent: i64 = (statistics.brokers.values())
            .filter_map(|b| b.req.get("Fetch"))
            .sum();
        self.0.store(sent.max(0) as usize, Ordering::SeqCst);
    }
}

impl rdkafka::consumer::ConsumerContext for Fetches {}

/// A source with nothing to read lets the broker hold its fetch: an idle
/// pipeline holds a consumer per topic and worker, and each asking every
/// 10 ms cost it a tenth of a core and the broker a quarter. The broker
/// still answers a held fetch as soon as a record arrives.
#[test]
fn an_idle_source_asks_the_broker_for_records_a_few_times_a_second() {
    use rdkafka::consumer::{BaseConsumer, Consumer};

    let (kafka, topic) = fresh("test-idle");
    let fetches = Arc::new(AtomicUsize::new(0));
    let consumer: BaseConsumer<Fetches> = pace_ingest::source::source_config(&kafka, "test-idle")
        .create_with_context(Fetches(fetches.clone()))
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    // Polled (statistics come through the poll) until the first fetch is
    // counted, then for five more statistics intervals.
    let poll_until = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            assert!(consumer.poll(Duration::from_millis(50)).is_none());
        }
    };
    poll_until("a first fetch", &|| fetches.load(Ordering::SeqCst) > 0);
    let (first, since) = (fetches.load(Ordering::SeqCst), Instant::now());
    poll_until("five seconds", &|| {
        since.elapsed() >= Duration::from_secs(5)
    });
    let seconds = since.elapsed().as_secs_f64();
    let per_s = (fetches.load(Ordering::SeqCst) - first) as f64 / seconds;
    assert!(
        per_s <= 5.0,
        "{per_s:.1} fetch requests a second from an idle source over {seconds:.1} s"
    );
    // A record produced now is still read (the held fetch is answered).
    let producer = TrackedProducer::new(&kafka).unwrap();
    producer.send(&topic, Some(b"k"), b"1", &[], 1).unwrap();
    producer.flush(Duration::from_secs(30)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(_)) => break,
            _ => assert!(Instant::now() < deadline, "the record was not read"),
        }
    }
}
