//! Accounts at the edge: every user's account, rebuilt from `pace.users`
//! (compacted: each user's latest record is their whole account), and the
//! routes that register, log in, refresh and log out. What a request asks
//! of an account goes to `pace.accounts` and is answered with what the
//! `accounts` job decided of it, in Kafka order per user
//! ([`schemas::accounts`]), so any edge logs any user in and a refresh
//! token used on two edges is caught.
//!
//! | route | answer |
//! | --- | --- |
//! | `POST /api/users` `{"user","password"}` | 201 `{user}`; 409 `exists`; 400 a bad name, or a password outside [`PASSWORD_BYTES`] |
//! | `POST /api/login` `{"user","password"}` | 200 [`Tokens`]; 401 a wrong user or password (one answer for both) |
//! | `POST /api/token/refresh` `{"refresh_token"}` | 200 [`Tokens`], the refresh token rotated; 401 `reused` (that token was used already: the session is revoked), `revoked`, `unknown_session` |
//! | `POST /api/logout` `{"refresh_token"}` | 204: the session is revoked; 401 as a refresh |
//!
//! The access token is pace's HS256 token for the user (so it posts,
//! joins rooms and acts like one from `pace token`), valid
//! [`ACCESS_TTL_S`]; the refresh token is `user~session~secret`, and the
//! records hold only the secret's SHA-256. A logout, or a session revoked
//! for a reused token, stops its refresh token at once on every edge; an
//! access token already given out holds until it expires. Passwords
//! are hashed with Argon2id (the OWASP parameters: 19 MiB, 2 passes) on a
//! blocking thread; a login for a user that does not exist verifies
//! against a dummy hash, so it takes as long. Each register and login
//! takes from its client address's budget, and each login from its user's
//! too ([`EdgeLimits::logins_per_address`], [`EdgeLimits::logins_per_user`]):
//! past either, 429, and no password is checked. Login, refresh and logout
//! need this edge to have a token secret (503 otherwise). The routes are
//! in `http.rs`.
//!
//! [`EdgeLimits::logins_per_address`]: crate::transport::limits::EdgeLimits::logins_per_address
//! [`EdgeLimits::logins_per_user`]: crate::transport::limits::EdgeLimits::logins_per_user

pub(crate) mod http;

use std::collections::{HashMap, VecDeque};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use schemas::Topics;
use schemas::accounts::{Account, AccountChange, AccountOutcome};
use serde::Serialize;
use tokio::sync::Notify;
use warp::Filter;

use crate::protocol::{ErrorCode, Refused, ViewKind};
use crate::views::live::{
    Changelog, Context, Key, LiveView, Routes, Snapshot, Subscribed, ViewModule,
};

/// Outcomes held for the requests waiting on them.
pub const OUTCOMES_HELD: usize = 4096;
/// How long a request waits for the job's decision before it answers 503.
pub const DECIDE_WAIT: Duration = Duration::from_secs(10);
/// How long an access token holds, seconds.
pub const ACCESS_TTL_S: u64 = 15 * 60;
/// Lengths a password may have, bytes.
pub const PASSWORD_BYTES: RangeInclusive<usize> = 8..=128;
/// Largest request body, bytes.
pub const MAX_BODY: usize = 4 * 1024;

/// What a login or a refresh answers.
#[derive(Clone, Debug, Serialize)]
pub struct Tokens {
    /// The user.
    pub user: String,
    /// pace's token for the user: `Authorization: Bearer …`.
    pub access_token: String,
    /// `Bearer`.
    pub token_type: &'static str,
    /// Seconds the access token holds.
    pub expires_in: u64,
    /// Presented once to get new tokens (and then no more), or to log out.
    pub refresh_token: String,
}

/// Every user's account, as this edge last heard, and the latest outcomes.
#[derive(Default)]
pub struct Accounts {
    users: RwLock<HashMap<String, Account>>,
    outcomes: Mutex<VecDeque<AccountOutcome>>,
    /// Notified after each change (for the requests waiting on an outcome).
    changed: Arc<Notify>,
}

impl Accounts {
    /// Applies a record of `pace.users`: the user's account as it is now,
    /// and the outcomes of the events that made it.
    pub fn apply(&self, change: AccountChange) {
        {
            let mut users = self.users.write().expect("accounts lock");
            match change.account {
                Some(a) => users.insert(change.user, a),
                None => users.remove(&change.user),
            };
        }
        {
            let mut outcomes = self.outcomes.lock().expect("outcomes lock");
            for o in change.outcomes {
                outcomes.push_back(o);
                if outcomes.len() > OUTCOMES_HELD {
                    outcomes.pop_front();
                }
            }
        }
        self.changed.notify_waiters();
    }

    /// `user`'s account, if registered.
    pub fn account(&self, user: &str) -> Option<Account> {
        self.users.read().expect("accounts lock").get(user).cloned()
    }

    /// Whether `user`'s session `sid` has ended (closed or revoked). A
    /// session this edge has not heard of yet (a login on another edge
    /// just now) has not.
    pub fn session_ended(&self, user: &str, sid: &str) -> bool {
        let users = self.users.read().expect("accounts lock");
        (users.get(user))
            .and_then(|a| a.session(sid))
            .is_some_and(|s| s.revoked)
    }

    /// Whether `user` is registered.
    pub fn exists(&self, user: &str) -> bool {
        self.users.read().expect("accounts lock").contains_key(user)
    }

    /// The outcome of request `request`, or what announces the next change.
    pub fn decided(&self, request: &str) -> Result<AccountOutcome, Arc<Notify>> {
        let outcomes = self.outcomes.lock().expect("outcomes lock");
        (outcomes.iter().rev())
            .find(|o| o.request == request)
            .cloned()
            .ok_or_else(|| self.changed.clone())
    }
}

impl LiveView for Accounts {
    /// Accounts are nobody's to watch.
    fn subscribe(&self, key: &Key, _: Option<&str>, _: Option<u64>) -> Result<Subscribed, Refused> {
        Err(Refused(
            ErrorCode::BadFrame,
            format!("{:?} cannot be watched", key.view),
        ))
    }

    fn resnapshot(&self, _: &Key, _: u64) -> Option<Snapshot> {
        None
    }
}

impl ViewModule for Accounts {
    fn kinds(&self) -> &'static [ViewKind] {
        &[]
    }

    fn changelogs(self: Arc<Self>, topics: &Topics) -> Vec<Changelog> {
        vec![Changelog::json(
            &topics.users,
            "account change",
            move |c: AccountChange, _| self.apply(c),
        )]
    }

    /// The account routes; and every token of a login is refused once
    /// its session has ended here.
    fn routes(self: Arc<Self>, context: &Context) -> Routes {
        let accounts = self.clone();
        (context.callers.input).ends_sessions(move |user, sid| accounts.session_ended(user, sid));
        http::routes(self, context).boxed()
    }
}
