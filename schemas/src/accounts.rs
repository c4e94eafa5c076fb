//! Accounts: users who register with a password, and their sessions.
//!
//! An edge sends what a user asks for as an [`AccountEvent`] to
//! `pace.accounts`, keyed by user; the `accounts` job decides each in Kafka
//! order per user and writes the user's whole [`Account`] with the
//! [`AccountOutcome`] of each event to `pace.users` (compacted: the latest
//! record of a user is all there is to know of them), which every edge
//! follows. So any edge logs any user in, and nothing is lost on restart.
//!
//! A password never leaves the edge that received it: records carry its
//! Argon2id hash (a PHC string), and a refresh token only its SHA-256.
//! Neither topic is archived, dead-lettered with its payload, logged or
//! counted by user.
//!
//! A login opens a session: a family of refresh tokens, one current at a
//! time. A refresh presents the current token and rotates it; presenting
//! any other (a used one: stolen, or replayed) is refused and revokes the
//! family, so whoever holds the newer one is logged out too. A logout
//! revokes the family. A user keeps their latest [`MAX_SESSIONS`] sessions.
//!
//! A wrong password at any edge is an event too ([`AccountAction::Failed`]):
//! [`LOCK_AFTER`] of them within [`LOCK_WINDOW_MS`] (by the events' own
//! times, so a replay decides the same) lock the user's logins on every
//! edge until that window has passed since the first of them; a login
//! that succeeds clears the count.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;
use crate::validate::{self as v, Validate, ValidationError};

/// Sessions kept per user; a login past them drops the oldest.
pub const MAX_SESSIONS: usize = 16;
/// Longest user name, bytes.
pub const MAX_USER_BYTES: usize = 64;
/// Longest password hash (PHC string), bytes.
pub const MAX_HASH_BYTES: usize = 256;
/// Failed logins within [`LOCK_WINDOW_MS`] that lock a user's logins.
pub const LOCK_AFTER: usize = 10;
/// The window of [`LOCK_AFTER`], milliseconds (15 minutes).
pub const LOCK_WINDOW_MS: i64 = 15 * 60 * 1000;

/// One thing asked of a user's account.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountEvent {
    /// The user (their name).
    pub user: String,
    /// The edge's id of the request: its outcome carries it.
    pub request: String,
    /// What is asked.
    pub action: AccountAction,
    /// When.
    pub time: Timestamp,
}

/// What is asked of an account.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AccountAction {
    /// Creates the account; refused if the name is taken.
    Register {
        /// Argon2id PHC string of the password.
        password_hash: String,
    },
    /// Opens a session (a login the edge checked the password of).
    Open {
        /// The session (refresh-token family) id.
        session: String,
        /// SHA-256 (hex) of its first refresh token.
        token_sha256: String,
    },
    /// Rotates a session's refresh token.
    Refresh {
        /// The session.
        session: String,
        /// SHA-256 (hex) of the token presented.
        presented_sha256: String,
        /// SHA-256 (hex) of the token that replaces it.
        next_sha256: String,
    },
    /// Closes a session (a logout).
    Close {
        /// The session.
        session: String,
    },
    /// A login whose password did not match, at some edge.
    Failed,
}

impl AccountAction {
    /// Its `kind` on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Register { .. } => "register",
            Self::Open { .. } => "open",
            Self::Refresh { .. } => "refresh",
            Self::Close { .. } => "close",
            Self::Failed => "failed",
        }
    }
}

/// A user name: 1 to [`MAX_USER_BYTES`] of ASCII letters, digits, `_`,
/// `-` and `.`, starting with a letter or digit.
pub fn user_name(field: &str, name: &str) -> Result<(), ValidationError> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.is_empty() || name.len() > MAX_USER_BYTES {
        return Err(ValidationError::new(
            field,
            format_args!("must be 1 to {MAX_USER_BYTES} bytes"),
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) || !name.chars().all(ok) {
        return Err(ValidationError::new(
            field,
            "may hold ASCII letters, digits, '_', '-' and '.', and starts with a letter or digit",
        ));
    }
    Ok(())
}

fn sha256_hex(field: &str, h: &str) -> Result<(), ValidationError> {
    if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(ValidationError::new(field, "must be 64 hex digits"))
    }
}

impl Validate for AccountEvent {
    const SECRET: bool = true;

    fn validate(&self) -> Result<(), ValidationError> {
        user_name("user", &self.user)?;
        v::id("request", &self.request)?;
        v::time("time", self.time)?;
        match &self.action {
            AccountAction::Register { password_hash } => {
                if !password_hash.starts_with("$argon2id$") {
                    return Err(ValidationError::new(
                        "action.password_hash",
                        "must be an Argon2id PHC string",
                    ));
                }
                v::text("action.password_hash", password_hash, MAX_HASH_BYTES)
            }
            AccountAction::Open {
                session,
                token_sha256,
            } => {
                v::id("action.session", session)?;
                sha256_hex("action.token_sha256", token_sha256)
            }
            AccountAction::Refresh {
                session,
                presented_sha256,
                next_sha256,
            } => {
                v::id("action.session", session)?;
                sha256_hex("action.presented_sha256", presented_sha256)?;
                sha256_hex("action.next_sha256", next_sha256)
            }
            AccountAction::Close { session } => v::id("action.session", session),
            AccountAction::Failed => Ok(()),
        }
    }
}

/// A session: a family of refresh tokens, one current at a time.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Session {
    /// Its id.
    pub id: String,
    /// SHA-256 (hex) of its current refresh token.
    pub token_sha256: String,
    /// Closed by a logout, or revoked because a used token came back.
    pub revoked: bool,
    /// When it was opened.
    pub opened: Timestamp,
}

/// A user's account as the `accounts` job keeps it.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Account {
    /// The user.
    pub user: String,
    /// Argon2id PHC string of their password.
    pub password_hash: String,
    /// When they registered.
    pub created: Timestamp,
    /// Their latest sessions, oldest first.
    pub sessions: Vec<Session>,
    /// The times of their latest failed logins (at most [`LOCK_AFTER`],
    /// none older than [`LOCK_WINDOW_MS`] before the latest), oldest
    /// first; cleared by a login.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<Timestamp>,
}

impl Account {
    /// The session `id`, if kept.
    pub fn session(&self, id: &str) -> Option<&Session> {
        self.sessions.iter().find(|s| s.id == id)
    }

    /// Until when their logins are locked, if [`LOCK_AFTER`] logins failed
    /// within [`LOCK_WINDOW_MS`]: the window's end after the first of them.
    pub fn locked_until(&self) -> Option<Timestamp> {
        (self.failures.len() >= LOCK_AFTER)
            .then(|| Timestamp(self.failures[self.failures.len() - LOCK_AFTER].0 + LOCK_WINDOW_MS))
    }
}

/// Why an account event was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountRefusal {
    /// The name is taken.
    Exists,
    /// There is no such user.
    UnknownUser,
    /// There is no such session (never opened, or dropped as old).
    UnknownSession,
    /// The session was closed or revoked.
    Revoked,
    /// A refresh token that is not the session's current one: the session
    /// is revoked.
    Reused,
    /// A session of that id exists.
    SessionExists,
    /// Too many failed logins: locked for a while.
    Locked,
}

impl AccountRefusal {
    /// What a client is told.
    pub fn message(&self) -> &'static str {
        match self {
            Self::Exists => "that user name is taken",
            Self::UnknownUser => "no such user",
            Self::UnknownSession => "no such session",
            Self::Revoked => "the session has ended; log in again",
            Self::Reused => "that refresh token was used already; the session is revoked",
            Self::SessionExists => "a session of that id exists",
            Self::Locked => "too many failed logins for this user; try again later",
        }
    }
}

/// What became of an account event.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AccountOutcome {
    /// The request's id.
    pub request: String,
    /// What was asked (`register`, `open`, `refresh`, `close`).
    pub kind: String,
    /// Why it was refused; `None`: done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<AccountRefusal>,
}

/// A record of `pace.users`, keyed by user: their account as it is now
/// (`None`: not registered, after a refused event), and the outcomes of
/// the events of the epoch that changed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountChange {
    /// The user.
    pub user: String,
    /// The account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<Account>,
    /// The outcomes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outcomes: Vec<AccountOutcome>,
}

impl Account {
    /// Applies `e` to the account of `e.user` (`None` before registering):
    /// the outcome.
    pub fn apply(account: &mut Option<Account>, e: &AccountEvent) -> AccountOutcome {
        AccountOutcome {
            request: e.request.clone(),
            kind: e.action.kind().to_owned(),
            refused: Self::decide(account, e).err(),
        }
    }

    fn decide(account: &mut Option<Account>, e: &AccountEvent) -> Result<(), AccountRefusal> {
        if let AccountAction::Register { password_hash } = &e.action {
            if account.is_some() {
                return Err(AccountRefusal::Exists);
            }
            *account = Some(Account {
                user: e.user.clone(),
                password_hash: password_hash.clone(),
                created: e.time,
                sessions: Vec::new(),
                failures: Vec::new(),
            });
            return Ok(());
        }
        let a = account.as_mut().ok_or(AccountRefusal::UnknownUser)?;
        match &e.action {
            AccountAction::Register { .. } => unreachable!("handled above"),
            AccountAction::Open {
                session,
                token_sha256,
            } => {
                // An edge that had not heard of the lock yet checked the
                // password: the lock holds all the same.
                if a.locked_until().is_some_and(|until| e.time < until) {
                    return Err(AccountRefusal::Locked);
                }
                if a.session(session).is_some() {
                    return Err(AccountRefusal::SessionExists);
                }
                a.failures.clear();
                a.sessions.push(Session {
                    id: session.clone(),
                    token_sha256: token_sha256.clone(),
                    revoked: false,
                    opened: e.time,
                });
                if a.sessions.len() > MAX_SESSIONS {
                    a.sessions.remove(0);
                }
                Ok(())
            }
            AccountAction::Refresh {
                session,
                presented_sha256,
                next_sha256,
            } => {
                let s = (a.sessions.iter_mut())
                    .find(|s| s.id == *session)
                    .ok_or(AccountRefusal::UnknownSession)?;
                if s.revoked {
                    return Err(AccountRefusal::Revoked);
                }
                if s.token_sha256 != *presented_sha256 {
                    s.revoked = true;
                    return Err(AccountRefusal::Reused);
                }
                s.token_sha256.clone_from(next_sha256);
                Ok(())
            }
            AccountAction::Close { session } => {
                let s = (a.sessions.iter_mut())
                    .find(|s| s.id == *session)
                    .ok_or(AccountRefusal::UnknownSession)?;
                s.revoked = true;
                Ok(())
            }
            AccountAction::Failed => {
                a.failures.retain(|t| t.0 > e.time.0 - LOCK_WINDOW_MS);
                a.failures.push(e.time);
                if a.failures.len() > LOCK_AFTER {
                    a.failures.remove(0);
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: AccountAction, request: &str) -> AccountEvent {
        AccountEvent {
            user: "ann".into(),
            request: request.into(),
            action,
            time: Timestamp(1_780_000_000_000),
        }
    }

    fn sha(c: char) -> String {
        std::iter::repeat_n(c, 64).collect()
    }

    #[test]
    fn a_used_refresh_token_revokes_its_session() {
        let mut account = None;
        let register = AccountAction::Register {
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        };
        let r = Account::apply(&mut account, &event(register.clone(), "1"));
        assert_eq!(r.refused, None);
        let again = Account::apply(&mut account, &event(register, "2"));
        assert_eq!(again.refused, Some(AccountRefusal::Exists));
        let open = AccountAction::Open {
            session: "s1".into(),
            token_sha256: sha('a'),
        };
        assert_eq!(
            Account::apply(&mut account, &event(open, "3")).refused,
            None
        );
        let refresh = |presented: char, next: char| AccountAction::Refresh {
            session: "s1".into(),
            presented_sha256: sha(presented),
            next_sha256: sha(next),
        };
        assert_eq!(
            Account::apply(&mut account, &event(refresh('a', 'b'), "4")).refused,
            None
        );
        // The old token again: refused, and the session is revoked, so
        // the new one is refused too.
        let reuse = Account::apply(&mut account, &event(refresh('a', 'c'), "5"));
        assert_eq!(reuse.refused, Some(AccountRefusal::Reused));
        let after = Account::apply(&mut account, &event(refresh('b', 'd'), "6"));
        assert_eq!(after.refused, Some(AccountRefusal::Revoked));
        for e in [
            event(
                AccountAction::Close {
                    session: "s1".into(),
                },
                "7",
            ),
            event(refresh('b', 'd'), "8"),
        ] {
            e.validate().unwrap();
        }
    }

    #[test]
    fn a_user_keeps_their_latest_sessions() {
        let mut account = None;
        let register = AccountAction::Register {
            password_hash: "$argon2id$x".into(),
        };
        Account::apply(&mut account, &event(register, "r"));
        for i in 0..MAX_SESSIONS + 3 {
            let open = AccountAction::Open {
                session: format!("s{i}"),
                token_sha256: sha('a'),
            };
            Account::apply(&mut account, &event(open, &format!("o{i}")));
        }
        let a = account.unwrap();
        assert_eq!(a.sessions.len(), MAX_SESSIONS);
        assert_eq!(a.sessions[0].id, "s3");
        let nobody = Account::apply(
            &mut None,
            &event(
                AccountAction::Close {
                    session: "s1".into(),
                },
                "x",
            ),
        );
        assert_eq!(nobody.refused, Some(AccountRefusal::UnknownUser));
    }

    #[test]
    fn failed_logins_lock_a_user_for_the_window_and_a_login_clears_them() {
        let at = |ms: i64, action: AccountAction| AccountEvent {
            time: Timestamp(1_780_000_000_000 + ms),
            ..event(action, "r")
        };
        let open = |session: &str| AccountAction::Open {
            session: session.into(),
            token_sha256: sha('a'),
        };
        let register = AccountAction::Register {
            password_hash: "$argon2id$x".into(),
        };
        let mut account = None;
        Account::apply(&mut account, &at(0, register));
        // Nine failures a minute apart, then one after the window of the
        // first: the first has expired, nine within the window.
        for i in 0..9 {
            Account::apply(&mut account, &at(i * 60_000, AccountAction::Failed));
        }
        Account::apply(&mut account, &at(LOCK_WINDOW_MS, AccountAction::Failed));
        assert_eq!(account.as_ref().unwrap().locked_until(), None);
        // The tenth within the window locks, until the window's end after
        // the first of the ten.
        Account::apply(&mut account, &at(LOCK_WINDOW_MS + 1, AccountAction::Failed));
        let until = account.as_ref().unwrap().locked_until().unwrap();
        assert_eq!(until.0, 1_780_000_000_000 + 60_000 + LOCK_WINDOW_MS);
        let early = Account::apply(&mut account, &at(until.0 - 1_780_000_000_001, open("s1")));
        assert_eq!(early.refused, Some(AccountRefusal::Locked));
        let later = Account::apply(&mut account, &at(until.0 - 1_780_000_000_000, open("s2")));
        assert_eq!(later.refused, None);
        assert!(account.unwrap().failures.is_empty(), "a login clears them");
    }

    #[test]
    fn names_and_hashes_are_checked() {
        assert!(user_name("user", "ann.b-c_9").is_ok());
        for bad in ["", ".ann", "ann smith", "ann/..", &"a".repeat(65), "änn"] {
            assert!(user_name("user", bad).is_err(), "{bad:?}");
        }
        let plain = event(
            AccountAction::Register {
                password_hash: "hunter22".into(),
            },
            "1",
        );
        assert!(plain.validate().is_err(), "a password is no hash");
        let short = event(
            AccountAction::Open {
                session: "s".into(),
                token_sha256: "abc".into(),
            },
            "1",
        );
        assert!(short.validate().is_err());
    }
}
