//! The account routes (see the table in `mod.rs`): passwords hashed and
//! checked here, on a blocking thread; the account events sent to
//! `pace.accounts` and answered with the job's decision.

use std::sync::{Arc, OnceLock};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::Rng;
use schemas::Timestamp;
use schemas::accounts::{
    Account, AccountAction, AccountEvent, AccountOutcome, AccountRefusal, user_name,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use warp::http::StatusCode;
use warp::{Filter, Reply};

use super::{ACCESS_TTL_S, Accounts, DECIDE_WAIT, MAX_BODY, PASSWORD_BYTES, Tokens};
use crate::transport::bucket::Keyed;
use crate::transport::http::{Callers, HttpError, json_error, json_with, send_error};
use crate::transport::listener::{AddressKey, Peer};
use crate::views::live::Context;

/// A user name and a password, as a register or a login sends them. No
/// `Debug`: a password is never printed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    user: String,
    password: String,
}

/// A refresh token, as a refresh or a logout sends it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Presented {
    refresh_token: String,
}

/// A refresh token taken apart: `user~session~secret`.
struct RefreshToken {
    user: String,
    session: String,
    secret: String,
}

impl RefreshToken {
    fn new(user: &str) -> Self {
        Self {
            user: user.to_owned(),
            session: random_hex(16),
            secret: random_hex(32),
        }
    }

    fn parse(token: &str) -> Option<Self> {
        let mut parts = token.split('~');
        let (user, session, secret) = (parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
        (parts.next().is_none()
            && user_name("user", user).is_ok()
            && hex(session, 32)
            && hex(secret, 64))
        .then(|| Self {
            user: user.to_owned(),
            session: session.to_owned(),
            secret: secret.to_owned(),
        })
    }

    fn sha256(&self) -> String {
        sha256_hex(&self.secret)
    }

    fn text(&self) -> String {
        format!("{}~{}~{}", self.user, self.session, self.secret)
    }
}

fn random_hex(bytes: usize) -> String {
    let mut rng = rand::rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The Argon2id PHC string of `password`, with a fresh salt.
fn hash_password(password: &str) -> String {
    let salt: [u8; 16] = rand::rng().random();
    let salt = SaltString::encode_b64(&salt).expect("16 bytes make a salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2id hashes any password")
        .to_string()
}

/// Whether `password` is the one `phc` is the hash of.
fn password_matches(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash no password matches in practice: a login for a user who does not
/// exist checks against it, so that it takes as long as one who does.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&random_hex(32)))
}

/// The HTTP status a refusal is answered with.
fn status(r: AccountRefusal) -> StatusCode {
    match r {
        AccountRefusal::Exists | AccountRefusal::SessionExists => StatusCode::CONFLICT,
        AccountRefusal::Locked => StatusCode::TOO_MANY_REQUESTS,
        AccountRefusal::UnknownUser
        | AccountRefusal::UnknownSession
        | AccountRefusal::Revoked
        | AccountRefusal::Reused => StatusCode::UNAUTHORIZED,
    }
}

fn refused(r: AccountRefusal) -> warp::reply::Response {
    json_with(
        status(r),
        &serde_json::json!({"error": r.message(), "code": r}),
    )
}

fn wrong_credentials() -> warp::reply::Response {
    json_error(
        StatusCode::UNAUTHORIZED,
        "wrong user or password".to_owned(),
    )
}

fn limited(what: &'static str) -> warp::reply::Response {
    observability::metrics()
        .edge_rate_limited
        .with_label_values(&[what])
        .inc();
    json_error(
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many {what} attempts; slow down"),
    )
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, HttpError> {
    // The error names what is wrong, never the value (a password).
    serde_json::from_slice(bytes).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => "a field is missing, unknown or not a string",
            _ => "not a JSON object",
        };
        HttpError(StatusCode::BAD_REQUEST, format!("bad body: {what}"))
    })
}

#[derive(Clone)]
struct Ctx {
    accounts: Arc<Accounts>,
    callers: Callers,
    per_address: Arc<Keyed<AddressKey>>,
    per_user: Arc<Keyed<String>>,
}

impl Ctx {
    /// Takes from `peer`'s budget.
    fn address_allows(&self, peer: Option<Peer>) -> bool {
        peer.is_none_or(|p| self.per_address.take(&p.addr.ip().into()))
    }

    /// Sends `action` on `user`'s account and waits for its outcome.
    async fn decide(
        &self,
        user: &str,
        action: AccountAction,
    ) -> Result<AccountOutcome, warp::reply::Response> {
        let request = format!("req-{}", random_hex(16));
        let event = AccountEvent {
            user: user.to_owned(),
            request: request.clone(),
            action,
            time: Timestamp::now(),
        };
        let input = &self.callers.input;
        let send = input.produce(&input.topics().accounts, user, &event);
        match crate::input::decision::produce_then_await(send, DECIDE_WAIT, || {
            self.accounts.decided(&request)
        })
        .await
        {
            Err(e) => Err(send_error(&e)),
            Ok(Some(o)) => Ok(o),
            Ok(None) => Err(json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the accounts job has not answered; try again".to_owned(),
            )),
        }
    }

    /// New tokens for the user whose session's refresh token is `refresh`.
    fn tokens(&self, refresh: &RefreshToken) -> warp::reply::Response {
        let access = (self.callers.input).issue(&refresh.user, &refresh.session, ACCESS_TTL_S);
        let Some(access) = access else {
            return no_secret();
        };
        let tokens = Tokens {
            user: refresh.user.clone(),
            access_token: access,
            token_type: "Bearer",
            expires_in: ACCESS_TTL_S,
            refresh_token: refresh.text(),
        };
        json_with(StatusCode::OK, &tokens)
    }

    async fn register(&self, peer: Option<Peer>, body: &[u8]) -> warp::reply::Response {
        if !self.address_allows(peer) {
            return limited("account");
        }
        let c: Credentials = match parse(body) {
            Ok(c) => c,
            Err(e) => return e.reply(),
        };
        if let Err(e) = user_name("user", &c.user) {
            return json_error(StatusCode::BAD_REQUEST, e.to_string());
        }
        if !PASSWORD_BYTES.contains(&c.password.len()) {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!(
                    "a password has {} to {} bytes",
                    PASSWORD_BYTES.start(),
                    PASSWORD_BYTES.end()
                ),
            );
        }
        if self.accounts.exists(&c.user) {
            return refused(AccountRefusal::Exists);
        }
        let password = c.password;
        let Ok(password_hash) = tokio::task::spawn_blocking(move || hash_password(&password)).await
        else {
            return json_error(StatusCode::SERVICE_UNAVAILABLE, "no hash".to_owned());
        };
        match self
            .decide(&c.user, AccountAction::Register { password_hash })
            .await
        {
            Ok(AccountOutcome {
                refused: Some(r), ..
            }) => refused(r),
            Ok(_) => json_with(StatusCode::CREATED, &serde_json::json!({"user": c.user})),
            Err(reply) => reply,
        }
    }

    async fn login(&self, peer: Option<Peer>, body: &[u8]) -> warp::reply::Response {
        if !self.callers.input.issues_tokens() {
            return no_secret();
        }
        if !self.address_allows(peer) {
            return limited("login");
        }
        let c: Credentials = match parse(body) {
            Ok(c) => c,
            Err(e) => return e.reply(),
        };
        if user_name("user", &c.user).is_err() || !PASSWORD_BYTES.contains(&c.password.len()) {
            return wrong_credentials();
        }
        if !self.per_user.take(&c.user) {
            return limited("login");
        }
        let account = self.accounts.account(&c.user);
        // Locked by failed logins on any edge: refused before the hash
        // is checked.
        if let Some(until) = account.as_ref().and_then(Account::locked_until)
            && Timestamp::now() < until
        {
            return refused(AccountRefusal::Locked);
        }
        let phc = account
            .as_ref()
            .map_or_else(|| dummy_hash().to_owned(), |a| a.password_hash.clone());
        let password = c.password;
        let matches = tokio::task::spawn_blocking(move || password_matches(&password, &phc))
            .await
            .unwrap_or(false);
        if account.is_none() {
            return wrong_credentials();
        }
        if !matches {
            // Counted for the user on every edge (the accounts job locks
            // them after LOCK_AFTER); the answer does not wait for it.
            let failed = AccountEvent {
                user: c.user.clone(),
                request: format!("req-{}", random_hex(16)),
                action: AccountAction::Failed,
                time: Timestamp::now(),
            };
            let input = &self.callers.input;
            if let Err(e) = input
                .produce(&input.topics().accounts, &c.user, &failed)
                .await
            {
                return send_error(&e);
            }
            return wrong_credentials();
        }
        let refresh = RefreshToken::new(&c.user);
        let open = AccountAction::Open {
            session: refresh.session.clone(),
            token_sha256: refresh.sha256(),
        };
        match self.decide(&c.user, open).await {
            Ok(AccountOutcome {
                refused: Some(r), ..
            }) => refused(r),
            Ok(_) => self.tokens(&refresh),
            Err(reply) => reply,
        }
    }

    async fn refresh(&self, body: &[u8]) -> warp::reply::Response {
        let Some(presented) = self.presented(body) else {
            return bad_refresh_token();
        };
        let next = RefreshToken {
            user: presented.user.clone(),
            session: presented.session.clone(),
            secret: random_hex(32),
        };
        let action = AccountAction::Refresh {
            session: presented.session.clone(),
            presented_sha256: presented.sha256(),
            next_sha256: next.sha256(),
        };
        match self.decide(&presented.user, action).await {
            Ok(AccountOutcome {
                refused: Some(r), ..
            }) => refused(r),
            Ok(_) => self.tokens(&next),
            Err(reply) => reply,
        }
    }

    async fn logout(&self, body: &[u8]) -> warp::reply::Response {
        let Some(presented) = self.presented(body) else {
            return bad_refresh_token();
        };
        // Only the holder of the current token logs a session out.
        let current = (self.accounts.account(&presented.user))
            .and_then(|a| a.session(&presented.session).cloned());
        match current {
            None => return refused(AccountRefusal::UnknownSession),
            Some(s) if s.revoked => return refused(AccountRefusal::Revoked),
            Some(s) if s.token_sha256 != presented.sha256() => {
                return refused(AccountRefusal::Reused);
            }
            Some(_) => {}
        }
        let close = AccountAction::Close {
            session: presented.session.clone(),
        };
        match self.decide(&presented.user, close).await {
            Ok(AccountOutcome {
                refused: Some(r), ..
            }) => refused(r),
            Ok(_) => StatusCode::NO_CONTENT.into_response(),
            Err(reply) => reply,
        }
    }

    fn presented(&self, body: &[u8]) -> Option<RefreshToken> {
        let p: Presented = serde_json::from_slice(body).ok()?;
        RefreshToken::parse(&p.refresh_token)
    }
}

fn no_secret() -> warp::reply::Response {
    json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "this edge has no token secret (PACE_TOKEN_SECRET); it logs nobody in".to_owned(),
    )
}

fn bad_refresh_token() -> warp::reply::Response {
    json_error(
        StatusCode::UNAUTHORIZED,
        "not a refresh token of this pace".to_owned(),
    )
}

/// The account routes.
pub(crate) fn routes(
    accounts: Arc<Accounts>,
    context: &Context,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone + use<> {
    let limits = &context.limits;
    let ctx = Ctx {
        accounts,
        callers: context.callers.clone(),
        per_address: Arc::new(Keyed::new(limits.logins_per_address, limits.budget_keys)),
        per_user: Arc::new(Keyed::new(limits.logins_per_user, limits.budget_keys)),
    };
    let ctx = warp::any().map(move || ctx.clone());
    let post = |path: warp::filters::BoxedFilter<()>| {
        path.and(warp::post())
            .and(warp::ext::optional::<Peer>())
            .and(crate::protocol::body::bytes(MAX_BODY))
            .and(ctx.clone())
    };
    let register = post(warp::path!("api" / "users").boxed()).then(
        |peer: Option<Peer>, body: bytes::Bytes, ctx: Ctx| async move {
            ctx.register(peer, &body).await
        },
    );
    let login =
        post(warp::path!("api" / "login").boxed()).then(
            |peer: Option<Peer>, body: bytes::Bytes, ctx: Ctx| async move {
                ctx.login(peer, &body).await
            },
        );
    let refresh = post(warp::path!("api" / "token" / "refresh").boxed()).then(
        |_: Option<Peer>, body: bytes::Bytes, ctx: Ctx| async move { ctx.refresh(&body).await },
    );
    let logout = post(warp::path!("api" / "logout").boxed()).then(
        |_: Option<Peer>, body: bytes::Bytes, ctx: Ctx| async move { ctx.logout(&body).await },
    );
    register
        .or(login)
        .unify()
        .or(refresh)
        .unify()
        .or(logout)
        .unify()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_check() {
        let h = hash_password("correct horse");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(!h.contains("correct horse"));
        assert!(password_matches("correct horse", &h));
        assert!(!password_matches("correct horsf", &h));
        assert!(!password_matches("correct horse", "not a hash"));
        assert_ne!(h, hash_password("correct horse"), "salted");
    }

    #[test]
    fn refresh_tokens_parse_back_and_nothing_else_does() {
        let t = RefreshToken::new("ann.b");
        let back = RefreshToken::parse(&t.text()).unwrap();
        assert_eq!((back.user.as_str(), back.sha256()), ("ann.b", t.sha256()));
        for bad in [
            "",
            "ann",
            "ann~x~y",
            &format!("{}~extra", t.text()),
            &t.text().replace("ann.b", "ann b"),
        ] {
            assert!(RefreshToken::parse(bad).is_none(), "{bad:?}");
        }
    }
}
