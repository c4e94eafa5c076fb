//! Follows the changelog topics into the edge's [`Views`]: every partition
//! of `pace.races`, `pace.standings`, `pace.rooms`, `pace.results` and
//! `pace.tournaments` from the beginning, so a new edge
//! rebuilds the whole view. It uses no consumer group offsets: an edge holds
//! nothing that needs them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use ingest::KafkaConfig;
use ingest::source::{RawRecord, StaticConsumer};
use schemas::topics::ORIGIN_HEADER;
use schemas::tournament::TournamentChange;
use schemas::{RaceDefinition, RoomChange, StandingsChange, TaskResult};
use serde::de::DeserializeOwned;

use crate::views::Views;

/// One changelog and what to do with each of its records.
type Apply = Box<dyn Fn(&Views, RawRecord) + Send>;

/// Decodes a changelog record as `T` and applies it with its origin; a
/// record that does not decode is logged and skipped.
fn changes<T: DeserializeOwned>(
    what: &'static str,
    apply: impl Fn(&Views, T, Option<i64>) + Send + 'static,
) -> Apply {
    Box::new(
        move |views, raw| match serde_json::from_slice::<T>(&raw.payload) {
            Ok(change) => apply(views, change, origin(&raw)),
            Err(e) => tracing::error!(offset = raw.offset, error = %e, "bad {what}"),
        },
    )
}

/// Starts a thread that applies the changelogs to `views` until `stop`.
pub fn follow(
    config: &KafkaConfig,
    views: Arc<Views>,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, ingest::IngestError> {
    let group = format!("pace-edge-{}", std::process::id());
    let t = &config.topics;
    let logs: Vec<(&str, Apply)> = vec![
        (
            &t.races,
            Box::new(|views: &Views, raw: RawRecord| {
                match schemas::decode::<RaceDefinition>(&raw.payload) {
                    Ok(def) => views.races.apply_race(def),
                    // The pipeline dead-letters these; the edge just skips them.
                    Err(e) => {
                        tracing::debug!(offset = raw.offset, error = %e, "skipping bad race definition");
                    }
                }
            }),
        ),
        (
            &t.standings,
            changes("standings change", |v: &Views, c: StandingsChange, o| {
                v.races.apply_standings_from(c, o);
            }),
        ),
        (
            &t.rooms,
            changes("room change", |v: &Views, c: RoomChange, o| {
                v.rooms.apply_from(c, o);
            }),
        ),
        (
            &t.results,
            changes("task result", |v: &Views, r: TaskResult, _| {
                v.tasks.apply(r)
            }),
        ),
        (
            &t.tournaments,
            changes("tournament change", |v: &Views, c: TournamentChange, o| {
                v.tournaments.apply(c, o);
            }),
        ),
    ];
    let mut consumers = Vec::with_capacity(logs.len());
    for (topic, apply) in logs {
        consumers.push((StaticConsumer::new(config, &group, topic, 0, 1)?, apply));
    }
    let handle = std::thread::Builder::new()
        .name("pace-edge-follow".into())
        .spawn(move || {
            // Sleep until the client says records arrived (or a while passed,
            // to notice `stop`).
            let me = std::thread::current();
            for (consumer, _) in &mut consumers {
                let me = me.clone();
                consumer.on_ready(move || me.unpark());
            }
            while !stop.load(Ordering::Relaxed) {
                let mut idle = true;
                for (consumer, apply) in &mut consumers {
                    for raw in consumer.poll(1024) {
                        idle = false;
                        apply(&views, raw);
                    }
                }
                if idle {
                    std::thread::park_timeout(Duration::from_millis(200));
                }
            }
        })
        .expect("spawn follower thread");
    Ok(handle)
}

/// The origin a changelog record carries, if any.
fn origin(raw: &RawRecord) -> Option<i64> {
    raw.header(ORIGIN_HEADER).and_then(|v| v.parse().ok())
}
