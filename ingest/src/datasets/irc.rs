//! An IRC channel log as one room's chat events.

use super::*;
use schemas::{ChatEvent, ChatKind, Validate};

/// The room `Recorded::Irc` replays a log into.
pub const ROOM: &str = "irc";

/// Reads the log at `path` as the events of `room`, in log order, into
/// [`Dataset::chat`]; a line that is none of these is skipped into
/// [`Dataset::skipped`].
///
/// `[hh:mm] <nick> text` is a message; `=== nick [host] has joined` a
/// join; `has left` and `has quit` a leave; `=== old is now known as new`
/// the old nick leaving and the new one joining; `=== mode/…` nothing;
/// any other `===` line an emote, a message `* nick …`. The date comes
/// from the file name (`…_2005-07-06_…`); a line carries the time of the
/// latest `[hh:mm]`, a day later each time the clock goes back.
pub fn read(path: &Path, room: &str) -> Result<Dataset, IngestError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let day0 = (0..name.len().saturating_sub(9))
        .filter_map(|i| name.get(i..i + 10))
        .find_map(|d| parse_time(&format!("{d}T00:00:00Z")).ok())
        .ok_or_else(|| bad(path, 0, "the file name holds no date (YYYY-MM-DD)"))?;
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let mut clock = (0i64, 0i64);
    let mut out = Dataset::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        let events = events(path, i + 1, line, room, day0, &mut clock);
        if let Some(events) = keep(&mut out.skipped, events)? {
            out.chat.extend(events);
        }
    }
    Ok(out)
}

/// The events of line `n`; `clock` is the (day, minute) of the latest
/// `[hh:mm]`, which a line with a good clock moves even if the rest of
/// it is bad.
fn events(
    path: &Path,
    n: usize,
    line: &str,
    room: &str,
    day0: Timestamp,
    clock: &mut (i64, i64),
) -> Result<Vec<ChatEvent>, IngestError> {
    let time = |(day, minute): (i64, i64)| Timestamp(day0.0 + (day * 1440 + minute) * 60_000);
    let event = |user: &str, kind: ChatKind, text: Option<String>, t: Timestamp| ChatEvent {
        room: room.to_owned(),
        // The logger pads some nicks with a space; nicks have none.
        user: user.trim().to_owned(),
        kind,
        text,
        client_msg_id: None,
        visibility: None,
        invitee: None,
        seq: None,
        edge: None,
        present: None,
        time: t,
    };
    let mut events = Vec::new();
    if let Some(rest) = line.strip_prefix('[') {
        let (at, rest) = rest
            .split_once("] ")
            .or_else(|| rest.strip_suffix(']').map(|at| (at, "")))
            .ok_or_else(|| bad(path, n, "expected [hh:mm]"))?;
        let (h, m) = at
            .split_once(':')
            .and_then(|(h, m)| Some((h.parse::<i64>().ok()?, m.parse::<i64>().ok()?)))
            .filter(|(h, m)| (0..24).contains(h) && (0..60).contains(m))
            .ok_or_else(|| bad(path, n, format_args!("{at:?} is not hh:mm")))?;
        if h * 60 + m < clock.1 {
            clock.0 += 1;
        }
        clock.1 = h * 60 + m;
        let (nick, said) = rest
            .strip_prefix('<')
            .and_then(|r| r.split_once("> "))
            .ok_or_else(|| bad(path, n, "expected <nick> text"))?;
        events.push(event(
            nick.trim(),
            ChatKind::Message,
            Some(said.to_owned()),
            time(*clock),
        ));
    } else if let Some(rest) = line.strip_prefix("=== ") {
        let t = time(*clock);
        if let Some((old, new)) = rest.split_once(" is now known as ") {
            events.push(event(old, ChatKind::Leave, None, t));
            events.push(event(new.trim(), ChatKind::Join, None, t));
        } else if rest.starts_with("mode/") {
        } else if let Some(at) = ["]  has joined #", "]  has left #", "]  has quit"]
            .iter()
            .find_map(|w| rest.find(w))
        {
            // `nick [user@host]  has …`: the host is the last bracket before.
            let host = rest[..at].rfind('[').unwrap_or(at);
            let nick = rest[..host].trim();
            let kind = if rest[at..].contains("has joined") {
                ChatKind::Join
            } else {
                ChatKind::Leave
            };
            events.push(event(nick, kind, None, t));
        } else {
            let nick = rest.split(' ').next().unwrap_or_default();
            events.push(event(nick, ChatKind::Message, Some(format!("* {rest}")), t));
        }
    } else {
        return Err(bad(path, n, "neither [hh:mm] nor ==="));
    }
    for e in &events {
        e.validate().map_err(|err| bad(path, n, err))?;
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lines_are_skipped_counted_and_named() {
        let dir = tempfile_dir();
        let path = dir.join("chat_2005-07-06_14.raw.txt");
        std::fs::write(
            &path,
            "[12:14] <ann> hello\n\
             [12:15] <bob>\n\
             [12:15] <bob> \n\
             garbage\n\
             [99:99] <ann> late\n\
             [12:16 <ann> no bracket\n\
             === carl [~c@host]  has joined #ubuntu\n\
             [12:17] <ann> bye\n",
        )
        .unwrap();
        let d = read(&path, "irc").unwrap();
        let said: Vec<_> = d.chat.iter().map(|e| (e.user.as_str(), e.kind)).collect();
        assert_eq!(
            said,
            [
                ("ann", ChatKind::Message),
                ("carl", ChatKind::Join),
                ("ann", ChatKind::Message)
            ]
        );
        let lines: Vec<usize> = d.skipped.iter().map(|s| s.line).collect();
        assert_eq!(lines, [2, 3, 4, 5, 6]);
        assert!(
            d.skipped[0]
                .to_string()
                .ends_with(":2: expected <nick> text"),
            "{}",
            d.skipped[0]
        );
        assert!(d.skipped[1].reason.contains("text"), "{}", d.skipped[1]);
        // The clock of a skipped line still counts: carl joined at 12:15.
        assert_eq!(d.chat[1].time.0 - d.chat[0].time.0, 60_000);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "pace-irc-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
