//! Broker address and the client settings every pace client shares.

use rdkafka::ClientConfig;
use schemas::Topics;

/// Where the brokers are and what the topics are called.
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port…]`.
    pub brokers: String,
    /// Topic names (a prefix per test run keeps runs apart).
    pub topics: Topics,
}

impl KafkaConfig {
    /// Brokers at `brokers`, default topic names.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            topics: Topics::default(),
        }
    }

    /// The same brokers with topic names behind `prefix`.
    pub fn with_topic_prefix(mut self, prefix: &str) -> Self {
        self.topics = Topics::with_prefix(prefix);
        self
    }

    /// A client configuration with the common settings.
    pub fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("client.id", "pace")
            .set("log_level", "4")
            // pace is an edge of its own broker: fail in seconds, not minutes.
            .set("socket.timeout.ms", "10000");
        c
    }

    /// A producer configuration: idempotent, acks from all in-sync replicas,
    /// low linger for latency.
    pub fn producer(&self) -> ClientConfig {
        let mut c = self.client();
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "2")
            .set("compression.type", "lz4")
            .set("queue.buffering.max.messages", "100000")
            .set("message.timeout.ms", "60000");
        c
    }

    /// A consumer configuration for statically assigned partitions: no
    /// auto-commit (pace commits after the sinks), reads only committed data.
    pub fn consumer(&self, group: &str) -> ClientConfig {
        let mut c = self.client();
        c.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "10")
            .set("queued.max.messages.kbytes", "16384")
            // librdkafka waits this long (default 1 s) to fetch again once
            // the local queue holds `queued.min.messages`: a backlog was
            // then read at about two queues a second, ~190k records/s.
            .set("fetch.queue.backoff.ms", "5");
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 1 s default capped reading a backlog at ~190k records/s a
    /// partition (`make bench`, consume ceiling): the consumer must fetch
    /// again within a few milliseconds of its queue draining.
    #[test]
    fn a_consumer_fetches_again_soon_after_its_queue_fills() {
        let c = KafkaConfig::new("x").consumer("g");
        let backoff: u64 = c.get("fetch.queue.backoff.ms").unwrap().parse().unwrap();
        assert!(backoff <= 10, "{backoff} ms");
    }
}
