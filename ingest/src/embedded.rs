//! The embedded broker: `pace run` without `--brokers` starts one in-process.
//!
//! It is librdkafka's mock cluster, which speaks the Kafka protocol on a
//! loopback port, so the pipeline, the edge and outside clients use it exactly
//! as they use a real broker (one code path). Its limits, also stated in the
//! README: it keeps everything in memory (nothing survives the process), it has
//! no retention or compaction, it implements only the APIs librdkafka clients
//! need, and it is not meant for load. Use `--brokers` with Apache Kafka for
//! anything that must last.

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use crate::{IngestError, KafkaConfig};

/// An in-process Kafka-protocol broker; stops when dropped.
///
/// It is neither `Send` nor `Sync`: keep it on the thread that made it, and
/// hand its address ([`EmbeddedBroker::config`]) to everything else.
pub struct EmbeddedBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl EmbeddedBroker {
    /// Starts a one-broker cluster and creates every pace topic on it.
    pub fn start(partitions: i32) -> Result<Self, IngestError> {
        let cluster = MockCluster::new(1).map_err(IngestError::kafka("start embedded broker"))?;
        let this = Self { cluster };
        for topic in this.config().topics.all() {
            this.cluster
                .create_topic(topic, partitions, 1)
                .map_err(IngestError::kafka("create topic"))?;
        }
        Ok(this)
    }

    /// How to reach it.
    pub fn config(&self) -> KafkaConfig {
        KafkaConfig::new(self.cluster.bootstrap_servers())
    }
}
