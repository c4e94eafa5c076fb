//! What the bench's WebSocket spectators watch and how a frame they read
//! becomes produce→frame samples: one runner's participant view, or a
//! race's top-20 window (protocol v2), where only a row already in the
//! window that shows a newer point counts.

use std::collections::HashMap;

use schemas::Timestamp;
use serde::Deserialize;

/// A participant frame, as far as the bench reads it.
#[derive(Deserialize)]
struct ParticipantFrame {
    row: Option<Row>,
}

/// A standings row, as far as the bench reads it.
#[derive(Deserialize)]
struct Row {
    last_seen: Timestamp,
}

/// A race window's frame, as far as the bench reads it.
#[derive(Deserialize)]
struct WindowFrame {
    /// A snapshot's rows.
    #[serde(default)]
    rows: Option<Vec<WindowRow>>,
    #[serde(default)]
    upserts: Vec<WindowRow>,
    #[serde(default)]
    removes: Vec<String>,
}

/// A row of a window.
#[derive(Deserialize)]
struct WindowRow {
    participant: String,
    last_seen: Timestamp,
}

/// Who watches: `spectators` WebSocket clients, the first `windows` of
/// them on a race's top-20 window, the others each following a runner.
#[derive(Clone, Copy, Debug)]
pub struct Audience {
    /// Spectators.
    pub spectators: usize,
    /// Of them, on windows.
    pub windows: usize,
}

/// What one spectator watches.
pub enum Watch {
    /// One runner (`race/participant`).
    Runner(String),
    /// A race's top-20 window (the race id).
    Top(String),
}

/// The produce→frame samples of one frame a spectator read.
pub fn frame_samples(
    watch: &Watch,
    text: &str,
    last: &mut HashMap<String, Timestamp>,
    mut sample: impl FnMut(&str, Timestamp),
) {
    match watch {
        Watch::Runner(key) => {
            if let Ok(ParticipantFrame { row: Some(row) }) = serde_json::from_str(text) {
                let seen = last.entry(key.clone()).or_insert(Timestamp(i64::MIN));
                if row.last_seen > *seen {
                    *seen = row.last_seen;
                    sample(key, row.last_seen);
                }
            }
        }
        // Only a row already in the window that shows a newer point is a
        // sample: a row that enters shows its runner's latest point, which
        // may be a second old when someone else's move brought it in.
        Watch::Top(race) => {
            let Ok(f) = serde_json::from_str::<WindowFrame>(text) else {
                return;
            };
            if let Some(rows) = f.rows {
                last.clear();
                last.extend(rows.into_iter().map(|r| (r.participant, r.last_seen)));
                return;
            }
            for p in &f.removes {
                last.remove(p);
            }
            for row in f.upserts {
                match last.get_mut(&row.participant) {
                    Some(seen) if row.last_seen > *seen => {
                        *seen = row.last_seen;
                        sample(&format!("{race}/{}", row.participant), row.last_seen);
                    }
                    Some(_) => {}
                    None => {
                        last.insert(row.participant, row.last_seen);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window spectator samples a row already in its window that shows a
    /// newer point, never a row that enters (its point may be old).
    #[test]
    fn a_window_samples_only_rows_it_already_holds() {
        let watch = Watch::Top("r".into());
        let mut last = HashMap::new();
        let mut got = Vec::new();
        let row = |p: &str, t: i64| format!(r#"{{"participant":"{p}","last_seen":{t}}}"#);
        for frame in [
            format!(r#"{{"type":"snapshot","rows":[{}]}}"#, row("a", 1)),
            format!(
                r#"{{"type":"delta","upserts":[{},{}]}}"#,
                row("a", 2),
                row("b", 5)
            ),
            format!(
                r#"{{"type":"delta","upserts":[{}],"removes":["a"]}}"#,
                row("b", 6)
            ),
            format!(r#"{{"type":"delta","upserts":[{}]}}"#, row("a", 9)),
            format!(r#"{{"type":"delta","upserts":[{}]}}"#, row("a", 9)),
        ] {
            frame_samples(&watch, &frame, &mut last, |key, t| {
                got.push((key.to_owned(), t.0))
            });
        }
        assert_eq!(got, [("r/a".to_owned(), 2), ("r/b".to_owned(), 6)]);
    }
}
