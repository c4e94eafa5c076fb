//! Creating the pace topics.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::{IngestError, KafkaConfig};

/// Partitions of each input and changelog topic unless told otherwise.
pub const DEFAULT_PARTITIONS: i32 = 4;

/// Creates every pace topic that does not exist yet, with `partitions` each.
/// Existing topics are left as they are.
pub async fn ensure_topics(config: &KafkaConfig, partitions: i32) -> Result<(), IngestError> {
    let admin: AdminClient<DefaultClientContext> = config
        .client()
        .create()
        .map_err(IngestError::kafka("create admin client"))?;
    let topics: Vec<NewTopic<'_>> = config
        .topics
        .all()
        .into_iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
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
    Ok(())
}
