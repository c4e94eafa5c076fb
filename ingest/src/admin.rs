//! Creating the pace topics.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::{AsyncRuntime, DefaultRuntime};

use crate::{IngestError, KafkaConfig};

/// How long `pace.edges` keeps what edges tell each other, ms.
pub const EDGES_RETENTION_MS: &str = "3600000";

/// Partitions of each input and changelog topic unless told otherwise.
pub const DEFAULT_PARTITIONS: i32 = 4;

/// Creates every pace topic that does not exist yet, with `partitions` each.
/// Existing topics are left as they are. Returns once the broker's metadata
/// shows every topic with a leader for each partition, so a producer started
/// next never sees a topic that comes and goes (which can reset an idempotent
/// producer's sequence numbers).
pub async fn ensure_topics(config: &KafkaConfig, partitions: i32) -> Result<(), IngestError> {
    let admin: AdminClient<DefaultClientContext> = config
        .client()
        .create()
        .map_err(IngestError::kafka("create admin client"))?;
    let topics: Vec<NewTopic<'_>> = config
        .topics
        .all()
        .into_iter()
        .map(|t| {
            let topic = NewTopic::new(t, partitions, TopicReplication::Fixed(1));
            if t == config.topics.edges {
                // Budget usage matters for seconds; an hour is plenty.
                topic.set("retention.ms", EDGES_RETENTION_MS)
            } else if t == config.topics.users {
                // The latest record of a user is their whole account.
                topic.set("cleanup.policy", "compact")
            } else {
                topic
            }
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(topics.iter(), &opts)
        .await
        .map_err(IngestError::kafka("create topics"))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(IngestError::Kafka {
                    op: "create topic",
                    source: rdkafka::error::KafkaError::AdminOp(code),
                })
                .inspect_err(|_| tracing::error!(topic, ?code, "cannot create topic"));
            }
        }
    }
    ready(&admin, &config.topics.all(), Duration::from_secs(30)).await
}

/// Waits until each of `topics` has a leader for every partition, or `timeout`.
async fn ready(
    admin: &AdminClient<DefaultClientContext>,
    topics: &[&str],
    timeout: Duration,
) -> Result<(), IngestError> {
    let deadline = std::time::Instant::now() + timeout;
    for topic in topics {
        loop {
            let md = admin
                .inner()
                .fetch_metadata(Some(topic), Duration::from_secs(5))
                .map_err(IngestError::kafka("fetch topic metadata"))?;
            let led = md.topics().iter().any(|t| {
                t.error().is_none()
                    && !t.partitions().is_empty()
                    && t.partitions()
                        .iter()
                        .all(|p| p.error().is_none() && p.leader() >= 0)
            });
            if led {
                break;
            }
            if std::time::Instant::now() > deadline {
                return Err(IngestError::NoSuchTopic(format!(
                    "{topic} (no leader for every partition after {timeout:?})"
                )));
            }
            DefaultRuntime::delay_for(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}
