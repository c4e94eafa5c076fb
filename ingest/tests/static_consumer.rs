//! `StaticConsumer` against a real broker: one wake-up, one poll, every
//! record queued by then. librdkafka calls the wake-up only when its queue
//! goes from empty to not empty, and the queue also carries statistics and
//! commit results; a poll that stopped at one of those would leave the
//! records behind it unread until something else woke the consumer, which
//! for an idle pipeline might be never.

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

#[test]
fn records_behind_a_statistics_event_are_read_by_the_poll_after_one_wake_up() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let kafka = KafkaConfig::new(brokers()).with_topic_prefix(&format!("test-consumer-{nanos}."));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(pace_ingest::admin::ensure_topics(&kafka, 1))
        .unwrap();
    let topic = kafka.topics.chat.clone();
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
