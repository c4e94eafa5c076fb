//! Input through the edge: who a request is (tokens), and producing chat
//! events to `pace.chat` and calc tasks to `pace.calc`, acknowledged by the
//! broker before the client is told. Nothing that fails a check reaches Kafka.

use std::time::{Duration, Instant};

use ingest::KafkaConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use schemas::{ChatEvent, ChatKind, Timestamp, Validate, Visibility};

use crate::auth::{self, AuthError};

/// Posts a connection may make per second, sustained…
pub const POSTS_PER_SECOND: f64 = 5.0;
/// …and in a burst.
pub const POST_BURST: f64 = 10.0;

/// The edge's way into `pace.chat`.
pub struct ChatInput {
    secret: Option<String>,
    producer: FutureProducer,
    topic: String,
    calc_topic: String,
}

impl ChatInput {
    /// A producer for `config`'s chat topic; tokens are checked with `secret`.
    pub fn new(config: &KafkaConfig, secret: Option<String>) -> Result<Self, ingest::IngestError> {
        let producer = config
            .producer()
            .create()
            .map_err(ingest::IngestError::kafka("create producer"))?;
        Ok(Self {
            secret,
            producer,
            topic: config.topics.chat.clone(),
            calc_topic: config.topics.calc.clone(),
        })
    }

    /// Who presents `token` (a bare token, or an `Authorization` header value).
    pub fn user(&self, token: Option<&str>) -> Result<String, AuthError> {
        let token = token.map(|t| t.strip_prefix("Bearer ").unwrap_or(t).trim());
        auth::verify(self.secret.as_deref(), token)
    }

    /// An event of `user` in `room`, now.
    pub fn event(room: &str, user: &str, kind: ChatKind) -> ChatEvent {
        ChatEvent {
            room: room.to_owned(),
            user: user.to_owned(),
            kind,
            text: None,
            client_msg_id: None,
            visibility: None,
            invitee: None,
            time: Timestamp::now(),
        }
    }

    /// A create of `room` by `user`.
    pub fn create(room: &str, user: &str, visibility: Visibility) -> ChatEvent {
        ChatEvent {
            visibility: Some(visibility),
            ..Self::event(room, user, ChatKind::Create)
        }
    }

    /// Validates `event` and produces it, keyed by room; returns once the
    /// broker has it. A refused event is not sent.
    pub async fn send(&self, event: &ChatEvent) -> Result<(), SendError> {
        self.produce(&self.topic, &event.room, event).await
    }

    /// Validates `task` and produces it, keyed by id; returns once the
    /// broker has it. A refused task is not sent.
    pub async fn submit(&self, task: &schemas::CalcTask) -> Result<(), SendError> {
        self.produce(&self.calc_topic, &task.id, task).await
    }

    async fn produce<R: Validate + serde::Serialize>(
        &self,
        topic: &str,
        key: &str,
        record: &R,
    ) -> Result<(), SendError> {
        record
            .validate()
            .map_err(|e| SendError::Invalid(e.to_string()))?;
        let payload = serde_json::to_vec(record).expect("input records serialize");
        let record = FutureRecord::to(topic).key(key).payload(&payload);
        self.producer
            .send(record, Duration::from_secs(10))
            .await
            .map(|_| ())
            .map_err(|(e, _)| SendError::Unavailable(e.to_string()))
    }
}

/// Why an event was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// It breaks a rule (text over 4 KiB, empty, …).
    #[error("{0}")]
    Invalid(String),
    /// The broker did not take it.
    #[error("the broker did not take it: {0}")]
    Unavailable(String),
}

/// A token bucket: `POST_BURST` posts at once, `POSTS_PER_SECOND` after.
pub struct RateLimit {
    tokens: f64,
    at: Instant,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            tokens: POST_BURST,
            at: Instant::now(),
        }
    }
}

impl RateLimit {
    /// Takes one post's worth, if there is one.
    pub fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * POSTS_PER_SECOND;
        self.tokens = (self.tokens + refill).min(POST_BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let mut r = RateLimit::default();
        assert_eq!((0..20).filter(|_| r.take()).count(), 10);
        std::thread::sleep(Duration::from_millis(450));
        assert_eq!((0..20).filter(|_| r.take()).count(), 2);
    }
}
