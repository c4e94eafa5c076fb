//! Follows the changelog topics into the edge's [`Views`]: every partition
//! of every changelog a view is rebuilt from ([`Views::changelogs`]), from
//! the beginning, so a new edge rebuilds every view. It uses no consumer
//! group offsets: an edge holds nothing that needs them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use ingest::KafkaConfig;
use ingest::source::StaticConsumer;

use crate::views::Views;

/// Starts a thread that applies the changelogs to `views` until `stop`.
pub fn follow(
    config: &KafkaConfig,
    views: &Views,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, ingest::IngestError> {
    let group = format!("pace-edge-{}", std::process::id());
    let logs = views.changelogs(&config.topics);
    let mut consumers = Vec::with_capacity(logs.len());
    for log in logs {
        let consumer = StaticConsumer::new(config, &group, &log.topic, 0, 1)?;
        consumers.push((consumer, log.apply));
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
                        apply(raw);
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
