//! Input through the edge: who a request is (tokens), and producing chat
//! events to `pace.chat`, calc tasks to `pace.calc`, GPS points to
//! `pace.gps` and any other input record through [`EdgeInput::produce`],
//! acknowledged by the broker before the client is told. Nothing that
//! fails a check reaches an input topic; a refused GPS point goes to
//! `pace.dlq` with its reason.

pub mod decision;
pub mod presence;
pub mod track;

use std::sync::Arc;
use tracing::Instrument;

use std::time::Duration;

use ingest::KafkaConfig;
use ingest::jsonl::InputRecord;
use ingest::producer::AsyncProducer;
use schemas::{ChatEvent, ChatKind, GpsPoint, Timestamp, Validate, Visibility};

use crate::auth::{self, AuthError};

/// Whether a user's session has ended.
type Ended = Box<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// How long a record the edge sends may wait in the client's queue.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// The edge's way into the input topics.
pub struct EdgeInput {
    secret: Option<String>,
    /// Whether a user's session has ended (the accounts view answers).
    ended: std::sync::OnceLock<Ended>,
    /// Who is connected to which room through this edge.
    presence: presence::Presence,
    issuer: Option<Arc<crate::issuer::Issuer>>,
    producer: AsyncProducer,
    topic: String,
    calc_topic: String,
    gps_topic: String,
    topics: schemas::Topics,
    dlq_topic: String,
    kafka: KafkaConfig,
}

impl EdgeInput {
    /// A producer for `config`'s chat topic; tokens are checked with `secret`.
    pub fn new(config: &KafkaConfig, secret: Option<String>) -> Result<Self, ingest::IngestError> {
        let producer = AsyncProducer::new(config)?;
        Ok(Self {
            secret,
            ended: std::sync::OnceLock::new(),
            presence: presence::Presence::new(),
            issuer: None,
            producer,
            topic: config.topics.chat.clone(),
            calc_topic: config.topics.calc.clone(),
            gps_topic: config.topics.gps.clone(),
            topics: config.topics.clone(),
            dlq_topic: config.topics.dlq.clone(),
            kafka: config.clone(),
        })
    }

    /// pace's token for `user`'s session `sid`, valid `ttl_s` from now;
    /// `None` without a secret.
    pub fn issue(&self, user: &str, sid: &str, ttl_s: u64) -> Option<String> {
        let secret = self.secret.as_deref()?;
        Some(auth::issue_session(secret, user, sid, auth::now_s(), ttl_s))
    }

    /// Asks `ended(user, session)` of every token that names a session:
    /// one that has ended is refused ([`AuthError::Revoked`]). Set once.
    pub fn ends_sessions(&self, ended: impl Fn(&str, &str) -> bool + Send + Sync + 'static) {
        let _ = self.ended.set(Box::new(ended));
    }

    /// Who is connected to which room through this edge.
    pub fn presence(&self) -> &presence::Presence {
        &self.presence
    }

    /// Whether this edge has a secret to sign tokens with.
    pub fn issues_tokens(&self) -> bool {
        self.secret.is_some()
    }

    /// Takes the tokens of `issuer` too, beside pace's own.
    pub fn with_issuer(mut self, issuer: Option<Arc<crate::issuer::Issuer>>) -> Self {
        self.issuer = issuer;
        self
    }

    /// Who presents `token` (a bare token, or an `Authorization` header
    /// value): pace's own (HS256, the secret), or the outside issuer's.
    pub fn user(&self, token: Option<&str>) -> Result<String, AuthError> {
        let token = token.map(|t| t.strip_prefix("Bearer ").unwrap_or(t).trim());
        match (&self.issuer, token) {
            (Some(issuer), Some(t)) if !t.is_empty() && !crate::issuer::is_own(t) => {
                issuer.verify(t)
            }
            _ => {
                let (user, sid) = auth::verify_session(self.secret.as_deref(), token)?;
                match (sid, self.ended.get()) {
                    (Some(sid), Some(ended)) if ended(&user, &sid) => Err(AuthError::Revoked),
                    _ => Ok(user),
                }
            }
        }
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
            seq: None,
            edge: None,
            present: None,
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
        self.produce(&self.topic, &event.room, event)
            .await
            .map(|_| ())
    }

    /// Validates `task` and produces it, keyed by id; returns once the
    /// broker has it. A refused task is not sent.
    pub async fn submit(&self, task: &schemas::CalcTask) -> Result<(), SendError> {
        self.produce(&self.calc_topic, &task.id, task)
            .await
            .map(|_| ())
    }

    /// Validates `point` and produces it, keyed as every GPS producer keys
    /// it; returns the partition and offset once the broker has it.
    pub async fn track(&self, point: &GpsPoint) -> Result<(i32, i64), SendError> {
        self.produce(&self.gps_topic, &point.key(), point).await
    }

    /// Sends a record refused at the edge to `pace.dlq`: the bytes as the
    /// client sent them (cut to the dead-letter limit), the reason, and the
    /// topic it was meant for, with partition and offset -1 (it never
    /// reached that topic).
    pub async fn dead_letter(
        &self,
        meant_for: Topic,
        payload: &[u8],
        reason: &str,
    ) -> Result<(), SendError> {
        let topic = match meant_for {
            Topic::Gps => &self.gps_topic,
        };
        let letter = ingest::source::DeadLetter {
            topic: topic.clone(),
            partition: -1,
            offset: -1,
            key: None,
            payload: payload.to_vec(),
            reason: reason.to_owned(),
            kind: "refused",
        };
        let (payload, list) = letter.record(Some("ws-edge"));
        let headers: Vec<(&str, &[u8])> = list.iter().map(|(k, v)| (*k, &v[..])).collect();
        self.producer
            .send(&self.dlq_topic, None, payload, &headers, SEND_TIMEOUT)
            .await
            .map_err(|e| SendError::Unavailable(e.to_string()))?;
        observability::metrics()
            .dlq_records
            .with_label_values(&[topic.as_str()])
            .inc();
        Ok(())
    }

    /// Where the brokers are (for a read of a changelog's past).
    pub fn kafka(&self) -> &KafkaConfig {
        &self.kafka
    }

    /// The topics this edge writes to.
    pub fn topics(&self) -> &schemas::Topics {
        &self.topics
    }

    /// Validates `record` and produces it to `topic` under `key`; returns
    /// the partition and offset once the broker has it. A refused record
    /// is not sent.
    pub async fn produce<R: Validate + serde::Serialize>(
        &self,
        topic: &str,
        key: &str,
        record: &R,
    ) -> Result<(i32, i64), SendError> {
        record
            .validate()
            .map_err(|e| SendError::Invalid(e.to_string()))?;
        let payload = serde_json::to_vec(record).expect("input records serialize");
        // A span of its own, whose context travels in the record's
        // `traceparent` header (when spans are exported).
        let span = tracing::info_span!(
            "kafka.produce",
            otel.name = %format_args!("produce {topic}"),
            otel.kind = "producer",
            messaging.destination.name = topic,
        );
        let trace = observability::traces::TraceParent::of(&span).map(|t| t.to_string());
        let headers: Vec<(&str, &[u8])> = trace
            .iter()
            .map(|t| (observability::traces::HEADER, t.as_bytes()))
            .collect();
        self.producer
            .send(
                topic,
                Some(key.as_bytes()),
                &payload,
                &headers,
                SEND_TIMEOUT,
            )
            .instrument(span)
            .await
            .map_err(|e| SendError::Unavailable(e.to_string()))
    }
}

/// The input topics a client's record can be dead-lettered for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topic {
    /// `pace.gps` (through `WS /ws/track`).
    Gps,
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
