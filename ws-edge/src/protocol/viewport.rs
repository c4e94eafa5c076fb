//! What a window of a race is (protocol v2): as a client asks for it
//! ([`WindowSpec`]), as the edge keeps it once checked ([`Window`]), and
//! where it is now ([`Span`]). The state of the windows a race serves is
//! `views/race/window.rs`'s.

use serde::{Deserialize, Serialize};

use crate::protocol::refusal::{ErrorCode, Refused};

/// The most rows a window spans.
pub const MAX_WINDOW_ROWS: u32 = 500;
/// Participants on either side of the one an `around` window follows, when
/// the client does not say…
pub const DEFAULT_AROUND: u32 = 5;
/// …and at most.
pub const MAX_AROUND: u32 = (MAX_WINDOW_ROWS - 1) / 2;
/// A window as a client asks for it: `{"top":N}`, `{"from":A,"to":B}` or
/// `{"around":P,"k":K}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// The first N ranks.
    #[serde(default)]
    pub top: Option<u32>,
    /// The first rank of a range.
    #[serde(default)]
    pub from: Option<u32>,
    /// Its last rank.
    #[serde(default)]
    pub to: Option<u32>,
    /// The participant a moving window follows.
    #[serde(default)]
    pub around: Option<String>,
    /// Ranks on either side of them.
    #[serde(default)]
    pub k: Option<u32>,
}

/// A window of a race's ranking.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Window {
    /// Ranks `from..=to`.
    Ranks {
        /// First rank, from 1.
        from: u32,
        /// Last rank.
        to: u32,
    },
    /// A participant's rank ± `k`: the window moves with them.
    Around {
        /// Whom it follows.
        participant: String,
        /// Ranks on either side.
        k: u32,
    },
}

impl WindowSpec {
    /// The window, or why it is not one.
    pub fn window(self) -> Result<Window, Refused> {
        let bad = |m: &str| Refused(ErrorCode::BadFrame, m.to_owned());
        let w = match self {
            WindowSpec {
                top: Some(n),
                from: None,
                to: None,
                around: None,
                k: None,
            } => Window::Ranks { from: 1, to: n },
            WindowSpec {
                top: None,
                from: Some(from),
                to: Some(to),
                around: None,
                k: None,
            } => Window::Ranks { from, to },
            WindowSpec {
                top: None,
                from: None,
                to: None,
                around: Some(participant),
                k,
            } => Window::Around {
                participant,
                k: k.unwrap_or(DEFAULT_AROUND),
            },
            _ => {
                return Err(bad(
                    "a window is {\"top\"}, {\"from\",\"to\"} or {\"around\",\"k\"?}",
                ));
            }
        };
        let invalid = |m: String| Err(Refused(ErrorCode::Invalid, m));
        match &w {
            Window::Ranks { from, to } if *from == 0 || to < from => invalid(format!(
                "window ranks {from}..{to}: ranks start at 1 and `to` ≥ `from`"
            )),
            Window::Ranks { from, to } if to - from >= MAX_WINDOW_ROWS => {
                invalid(format!("a window spans at most {MAX_WINDOW_ROWS} ranks"))
            }
            Window::Around { k, .. } if *k > MAX_AROUND => {
                invalid(format!("`k` is at most {MAX_AROUND}"))
            }
            _ => Ok(w),
        }
    }
}

/// Where a window is now: ranks `from..=to` of `total` ranked
/// participants (empty when `to < from`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Span {
    /// First rank shown.
    pub from: u32,
    /// Last rank shown.
    pub to: u32,
    /// Ranked participants in the race.
    pub total: u32,
}

impl Span {
    /// Whether any of `ranks` (sorted) lies inside.
    pub fn holds_any(&self, ranks: &[u32]) -> bool {
        let i = ranks.partition_point(|&r| r < self.from);
        i < ranks.len() && ranks[i] <= self.to
    }
}
