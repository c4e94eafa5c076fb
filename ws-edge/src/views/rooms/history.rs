//! A room's messages older than the edge holds, read back from the
//! changelog (`pace.rooms`) as far as its retention goes.
//!
//! While it follows the changelog the edge notes, per room, where its
//! messages are: the first seq of a record and the record's place, every
//! [`INDEX_EVERY`] messages (a few bytes per thousand messages). A page
//! that starts before what the edge holds is read from the latest noted
//! record at or before it, forward in the room's partition, skipping the
//! other rooms' records, until the page is full, the partition's end, or
//! [`SCAN_MAX`] records (then the page is what was found, and the client
//! asks again from its last seq).

use std::time::Duration;

use ingest::KafkaConfig;
use schemas::{RoomChange, RoomMessage};

/// Messages between two notes of where a room's messages are.
pub const INDEX_EVERY: u64 = 256;
/// Most records one page read goes through.
pub const SCAN_MAX: usize = 50_000;
/// Longest one page read takes.
const READ_FOR: Duration = Duration::from_secs(10);

/// The messages of `room` after `since`, at most `limit`, read from
/// `offset` on in `partition` of the changelog `topic`. Blocking: run it
/// off the runtime's threads.
pub fn read(
    kafka: &KafkaConfig,
    topic: &str,
    room: &str,
    (partition, offset): (i32, i64),
    since: u64,
    limit: usize,
) -> Result<Vec<RoomMessage>, String> {
    let group = format!("pace-edge-history-{}", std::process::id());
    let mut out: Vec<RoomMessage> = Vec::new();
    let place = (topic, partition, offset);
    ingest::reader::scan(kafka, &group, place, (SCAN_MAX, READ_FOR), |raw| {
        let Ok(change) = serde_json::from_slice::<RoomChange>(&raw.payload) else {
            return false;
        };
        if change.room != room {
            return false;
        }
        // In seq order, each once (a changelog written again after a
        // replay holds messages twice).
        for m in change.messages {
            let last = out.last().map_or(since, |l| l.seq);
            if m.seq > last && out.len() < limit {
                out.push(m);
            }
        }
        out.len() >= limit
    })?;
    Ok(out)
}
