//! Follows the changelog topics into the edge's [`Views`]: every partition
//! of `pace.races`, `pace.standings`, `pace.rooms` and `pace.results` from the beginning, so a new edge
//! rebuilds the whole view. It uses no consumer group offsets: an edge holds
//! nothing that needs them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use ingest::KafkaConfig;
use ingest::source::StaticConsumer;
use schemas::topics::ORIGIN_HEADER;
use schemas::{RaceDefinition, RoomChange, StandingsChange, TaskResult};

use crate::views::Views;

/// Starts a thread that applies the changelogs to `views` until `stop`.
pub fn follow(
    config: &KafkaConfig,
    views: Arc<Views>,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, ingest::IngestError> {
    let group = format!("pace-edge-{}", std::process::id());
    let mut races = StaticConsumer::new(config, &group, &config.topics.races, 0, 1)?;
    let mut standings = StaticConsumer::new(config, &group, &config.topics.standings, 0, 1)?;
    let mut rooms = StaticConsumer::new(config, &group, &config.topics.rooms, 0, 1)?;
    let mut results = StaticConsumer::new(config, &group, &config.topics.results, 0, 1)?;
    let handle = std::thread::Builder::new()
        .name("pace-edge-follow".into())
        .spawn(move || {
            // Sleep until the client says records arrived (or a while passed,
            // to notice `stop`).
            let me = std::thread::current();
            races.on_ready({
                let me = me.clone();
                move || me.unpark()
            });
            standings.on_ready({
                let me = me.clone();
                move || me.unpark()
            });
            rooms.on_ready({
                let me = me.clone();
                move || me.unpark()
            });
            results.on_ready(move || me.unpark());
            while !stop.load(Ordering::Relaxed) {
                let mut idle = true;
                for raw in races.poll(1024) {
                    idle = false;
                    match schemas::decode::<RaceDefinition>(&raw.payload) {
                        Ok(def) => views.apply_race(def),
                        // The pipeline dead-letters these; the edge just skips them.
                        Err(e) => tracing::debug!(offset = raw.offset, error = %e, "skipping bad race definition"),
                    }
                }
                for raw in standings.poll(1024) {
                    idle = false;
                    match serde_json::from_slice::<StandingsChange>(&raw.payload) {
                        Ok(change) => views.apply_standings_from(change, origin(&raw)),
                        Err(e) => tracing::error!(offset = raw.offset, error = %e, "bad standings change"),
                    }
                }
                for raw in rooms.poll(1024) {
                    idle = false;
                    match serde_json::from_slice::<RoomChange>(&raw.payload) {
                        Ok(change) => views.rooms.apply_from(change, origin(&raw)),
                        Err(e) => tracing::error!(offset = raw.offset, error = %e, "bad room change"),
                    }
                }
                for raw in results.poll(1024) {
                    idle = false;
                    match serde_json::from_slice::<TaskResult>(&raw.payload) {
                        Ok(r) => views.tasks.apply(r),
                        Err(e) => tracing::error!(offset = raw.offset, error = %e, "bad task result"),
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
fn origin(raw: &ingest::source::RawRecord) -> Option<i64> {
    raw.header(ORIGIN_HEADER).and_then(|v| v.parse().ok())
}
