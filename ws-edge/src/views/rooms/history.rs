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

use std::time::{Duration, Instant};

use ingest::KafkaConfig;
use ingest::reader::{Reader, Start};
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
    let start = [(topic.to_owned(), partition, Start::At(offset))];
    let mut reader = Reader::new(kafka, &group, &start).map_err(|e| e.to_string())?;
    let (_, end) = reader
        .watermarks(topic, partition)
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let (mut scanned, mut next) = (0usize, offset);
    let deadline = Instant::now() + READ_FOR;
    while out.len() < limit && next < end && scanned < SCAN_MAX {
        if Instant::now() > deadline {
            return Err(format!("the changelog did not answer within {READ_FOR:?}"));
        }
        for (_, raw) in reader.poll(1024, Duration::from_millis(200)) {
            scanned += 1;
            next = raw.offset + 1;
            let Ok(change) = serde_json::from_slice::<RoomChange>(&raw.payload) else {
                continue;
            };
            if change.room != room {
                continue;
            }
            // In seq order, each once (a changelog written again after a
            // replay holds messages twice).
            for m in change.messages {
                let last = out.last().map_or(since, |l: &RoomMessage| l.seq);
                if m.seq > last && out.len() < limit {
                    out.push(m);
                }
            }
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}
