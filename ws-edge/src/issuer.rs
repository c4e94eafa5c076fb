//! Tokens from an outside identity provider (an OIDC issuer): RS256 or
//! ES256 JWTs signed by a key of its JWK set (`--jwks FILE` or
//! `--jwks URL`), with their issuer (`--jwt-issuer`) and audience
//! (`--jwt-audience`) checked, beside pace's own HS256 tokens. The
//! provider's keys rotate without a restart:
//!
//! - a file is read again when it changes (looked at at most once a
//!   second);
//! - a URL (the provider's `jwks_uri`, `http://` or `https://` with the
//!   Mozilla roots) is fetched again every [`REFETCH_EVERY`], and at once
//!   when a token names a key the set does not hold (at most once every
//!   [`REFETCH_AT_MOST`]: a stream of made-up key ids costs the provider
//!   nothing); that token is refused, and the next one is taken once the
//!   set holds its key.
//!
//! A token signed by a key that left the set is refused. A set that no
//! longer reads (a broken file, a provider that is down or answers
//! garbage, more than [`MAX_SET_BYTES`]) keeps the last good one, and says
//! so in the log.

use std::path::PathBuf;
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;

use crate::auth::{AuthError, CLOCK_SKEW_S};

/// How often a file's contents are looked at, at most.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How often a URL's set is fetched again.
pub const REFETCH_EVERY: Duration = Duration::from_secs(300);
/// The shortest time between two fetches of a URL's set.
pub const REFETCH_AT_MOST: Duration = Duration::from_secs(10);
/// The largest set taken (a provider's is a few KiB).
pub const MAX_SET_BYTES: usize = 1 << 20;
/// How long a fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Where an issuer's JWK set (`{"keys": […]}`) is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwksSource {
    /// A file.
    File(PathBuf),
    /// An `http://` or `https://` URL.
    Url(String),
}

impl JwksSource {
    /// A URL if `s` begins `http://` or `https://`, else a file.
    pub fn parse(s: &str) -> Self {
        if s.starts_with("http://") || s.starts_with("https://") {
            Self::Url(s.to_owned())
        } else {
            Self::File(PathBuf::from(s))
        }
    }

    /// The set's text, as it is now.
    async fn load(&self, http: &reqwest::Client) -> Result<String, String> {
        match self {
            Self::File(path) => read(path),
            Self::Url(url) => fetch(http, url).await.map_err(|e| format!("{url}: {e}")),
        }
    }
}

impl std::fmt::Display for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Url(url) => f.write_str(url),
        }
    }
}

/// The body of a GET of `url`: a success status, at most
/// [`MAX_SET_BYTES`], UTF-8.
async fn fetch(http: &reqwest::Client, url: &str) -> Result<String, String> {
    let mut response = http.get(url).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("answered {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_SET_BYTES {
            return Err(format!("more than {MAX_SET_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|_| "not UTF-8".to_owned())
}

/// Where an issuer's keys are, and what its tokens must say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerConfig {
    /// The JWK set.
    pub jwks: JwksSource,
    /// The `iss` its tokens carry.
    pub issuer: String,
    /// The `aud` its tokens must name.
    pub audience: String,
}

/// An outside issuer whose tokens this edge accepts.
#[derive(Debug)]
pub struct Issuer {
    config: IssuerConfig,
    check_every: Duration,
    keys: RwLock<Keys>,
    /// Wakes a URL's fetcher before its time (a key not in the set).
    wake: Arc<tokio::sync::Notify>,
}

#[derive(Debug)]
struct Keys {
    set: JwkSet,
    /// The set's text as last read.
    text: String,
    /// When a file was last looked at.
    checked: Instant,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

fn read(path: &std::path::Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn parse(source: &JwksSource, text: &str) -> Result<JwkSet, String> {
    serde_json::from_str(text).map_err(|e| format!("{source}: not a JWK set: {e}"))
}

impl Issuer {
    /// The issuer `config` describes; its key set must read now. A URL's
    /// set is then fetched again in the background (a task that ends when
    /// the issuer is dropped).
    pub async fn start(config: IssuerConfig) -> Result<Arc<Self>, String> {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| e.to_string())?;
        let text = config.jwks.load(&http).await?;
        let set = parse(&config.jwks, &text)?;
        let issuer = Arc::new(Self {
            config,
            check_every: CHECK_EVERY,
            keys: RwLock::new(Keys {
                set,
                text,
                checked: Instant::now(),
            }),
            wake: Arc::default(),
        });
        if matches!(issuer.config.jwks, JwksSource::Url(_)) {
            let wake = Arc::clone(&issuer.wake);
            tokio::spawn(refetch(Arc::downgrade(&issuer), wake, http, REFETCH_EVERY));
        }
        Ok(issuer)
    }

    /// Takes `text`, the set as just read, if it changed and parses.
    fn take(&self, text: Result<String, String>) {
        let mut keys = self.keys.write().expect("keys lock");
        if text.as_ref().is_ok_and(|t| *t == keys.text) {
            return;
        }
        match text.and_then(|t| Ok((parse(&self.config.jwks, &t)?, t))) {
            Ok((set, text)) => {
                tracing::info!(keys = set.keys.len(), source = %self.config.jwks, "JWK set changed; read again");
                keys.set = set;
                keys.text = text;
            }
            Err(e) => tracing::warn!(error = %e, "JWK set unreadable; keeping the last one"),
        }
    }

    /// Reads a file's set again if it changed since it was last read
    /// (looked at once a second at most). A URL's is the fetcher's.
    fn refresh(&self) {
        let JwksSource::File(path) = &self.config.jwks else {
            return;
        };
        {
            let mut keys = self.keys.write().expect("keys lock");
            if keys.checked.elapsed() < self.check_every {
                return;
            }
            keys.checked = Instant::now();
        }
        self.take(read(path));
    }

    /// The user (`sub`) an RS256 or ES256 `token` of this issuer names.
    pub fn verify(&self, token: &str) -> Result<String, AuthError> {
        let invalid = |m: String| AuthError::Invalid(m);
        let header = decode_header(token).map_err(|e| invalid(e.to_string()))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(invalid(format!(
                "{:?} is not an algorithm this edge takes",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| invalid("the token names no key (kid)".into()))?;
        self.refresh();
        let key = {
            let keys = self.keys.read().expect("keys lock");
            let Some(jwk) = keys.set.find(&kid) else {
                // Perhaps a key the provider has just added.
                self.wake.notify_one();
                return Err(invalid(format!("no key {kid:?} in the issuer's set")));
            };
            DecodingKey::from_jwk(jwk).map_err(|e| invalid(e.to_string()))?
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = CLOCK_SKEW_S;
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        let data = decode::<Claims>(token, &key, &validation).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
            _ => invalid(e.to_string()),
        })?;
        schemas::validate::id("sub", &data.claims.sub).map_err(|e| invalid(e.to_string()))?;
        Ok(data.claims.sub)
    }
}

/// Fetches a URL's set again every `every`, or when woken by a key not in
/// it (but never twice within [`REFETCH_AT_MOST`]), until the issuer is
/// dropped.
async fn refetch(
    issuer: Weak<Issuer>,
    wake: Arc<tokio::sync::Notify>,
    http: reqwest::Client,
    every: Duration,
) {
    loop {
        // No strong reference is held while asleep: a dropped issuer ends
        // the task at its next wake-up.
        let _ = tokio::time::timeout(every, wake.notified()).await;
        let Some(JwksSource::Url(url)) = issuer.upgrade().map(|i| i.config.jwks.clone()) else {
            return;
        };
        let text = fetch(&http, &url).await.map_err(|e| format!("{url}: {e}"));
        match issuer.upgrade() {
            Some(strong) => strong.take(text),
            None => return,
        }
        tokio::time::sleep(REFETCH_AT_MOST).await;
    }
}

/// Whether `token` is one of pace's own (HS256) rather than an issuer's.
pub fn is_own(token: &str) -> bool {
    decode_header(token).is_ok_and(|h| h.alg == Algorithm::HS256)
}

/// Two P-256 keys made with openssl for pace's tests (they sign nothing
/// real): each private half as PKCS#8 DER in hex, each public half as a
/// JWK; and ES256 tokens signed with them.
#[doc(hidden)]
pub mod test_keys {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};

    /// Key A (private, PKCS#8 DER, hex).
    pub const KEY_A: &str = "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420e14b42be6e48f3b9e806e8278b4aeddcf34ad307a7c1e3ea59c84cd05e194535a14403420004d980fe1fbfc1113d7f6f9c99debd4c881db077a14c9db38aaff3b0eb4b2994f4be6d5590134124cb86d35b2d3c71ac2786bc296e7594970a67771364b1568b85";
    /// Key B (private, PKCS#8 DER, hex).
    pub const KEY_B: &str = "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b020101042016857598fd723f782fb521897f368aa37e9c90debbc3dd46e3de27e06025ceeda14403420004f431df0e62d9e3fc6130521a29111824029806b8b5826e5290cc9036d73524ee35de31aa5bf103e16648c8ebd741520157ede05df74de324d73a8324fe1b94f3";
    /// Key A's public half, `kid` `key-a`.
    pub const JWK_A: &str = r#"{"kty":"EC","crv":"P-256","kid":"key-a","alg":"ES256","use":"sig","x":"2YD-H7_BET1_b5yZ3r1MiB2wd6FMnbOKr_Ow60splPQ","y":"vm1VkBNBJMuG01stPHGsJ4a8KW51lJcKZ3cTZLFWi4U"}"#;
    /// Key B's public half, `kid` `key-b`.
    pub const JWK_B: &str = r#"{"kty":"EC","crv":"P-256","kid":"key-b","alg":"ES256","use":"sig","x":"9DHfDmLZ4_xhMFIaKREYJAKYBri1gm5SkMyQNtc1JO4","y":"Nd4xqlvxA-FmSMjr10FSAVft4F33TeMk1zqDJP4blPM"}"#;

    /// `claims` signed with `key` (one of the above), as key `kid`.
    pub fn es256(key: &str, kid: &str, claims: &serde_json::Value) -> String {
        let der: Vec<u8> = (0..key.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&key[i..i + 2], 16).expect("hex"))
            .collect();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.into());
        encode(&header, claims, &EncodingKey::from_ec_der(&der)).expect("ES256 signs")
    }

    /// A JWK set of `keys` (JWKs above).
    pub fn set(keys: &[&str]) -> String {
        format!(r#"{{"keys":[{}]}}"#, keys.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::test_keys::*;
    use super::*;

    fn token(key: &str, kid: &str, iss: &str, aud: &str, exp_in: i64) -> String {
        let now = crate::auth::now_s() as i64;
        let claims = serde_json::json!({"sub": "ann", "iss": iss, "aud": aud, "exp": now + exp_in, "iat": now});
        es256(key, kid, &claims)
    }

    fn config(jwks: JwksSource) -> IssuerConfig {
        IssuerConfig {
            jwks,
            issuer: "https://id.example".into(),
            audience: "pace".into(),
        }
    }

    #[tokio::test]
    async fn an_issuers_tokens_are_checked_against_its_keys_issuer_and_audience() {
        let dir = tempfile::tempdir().unwrap();
        let jwks = dir.path().join("jwks.json");
        std::fs::write(&jwks, set(&[JWK_A])).unwrap();
        let mut issuer = Issuer::start(config(JwksSource::File(jwks.clone())))
            .await
            .unwrap();
        Arc::get_mut(&mut issuer).unwrap().check_every = Duration::ZERO;
        let good = token(KEY_A, "key-a", "https://id.example", "pace", 60);
        assert_eq!(issuer.verify(&good), Ok("ann".into()));
        assert!(!is_own(&good));
        for (bad, why) in [
            (
                token(KEY_A, "key-a", "https://other.example", "pace", 60),
                "issuer",
            ),
            (
                token(KEY_A, "key-a", "https://id.example", "other", 60),
                "audience",
            ),
            (
                token(KEY_B, "key-a", "https://id.example", "pace", 60),
                "signature",
            ),
            (
                token(KEY_B, "key-b", "https://id.example", "pace", 60),
                "unknown key",
            ),
        ] {
            assert!(
                matches!(issuer.verify(&bad), Err(AuthError::Invalid(_))),
                "{why}"
            );
        }
        let old = token(KEY_A, "key-a", "https://id.example", "pace", -120);
        assert_eq!(issuer.verify(&old), Err(AuthError::Expired));
        // The keys rotate: B in, A out, without a restart.
        std::fs::write(&jwks, set(&[JWK_B])).unwrap();
        let b = token(KEY_B, "key-b", "https://id.example", "pace", 60);
        assert_eq!(issuer.verify(&b), Ok("ann".into()));
        assert!(matches!(issuer.verify(&good), Err(AuthError::Invalid(_))));
        // A broken file keeps the last good set.
        std::fs::write(&jwks, "{not json").unwrap();
        assert_eq!(issuer.verify(&b), Ok("ann".into()));
        // pace's own tokens are HS256, and not an issuer's to check.
        assert!(is_own(&crate::auth::issue(
            "s",
            "ann",
            crate::auth::now_s(),
            60
        )));
        let missing = JwksSource::File(dir.path().join("missing.json"));
        assert!(Issuer::start(config(missing)).await.is_err());
    }

    /// A provider's `jwks_uri`, served here over HTTP: its keys rotate,
    /// and the edge fetches the set again when a token names a key it
    /// does not hold, but not once per such token.
    #[tokio::test]
    async fn a_sets_url_is_fetched_again_when_a_token_names_a_new_key() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use warp::Filter;
        let served = Arc::new(RwLock::new(set(&[JWK_A])));
        let fetches = Arc::new(AtomicUsize::new(0));
        let route = {
            let (served, fetches) = (Arc::clone(&served), Arc::clone(&fetches));
            warp::path!("jwks").map(move || {
                fetches.fetch_add(1, Ordering::SeqCst);
                served.read().unwrap().clone()
            })
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(warp::serve(route).incoming(listener).run());
        let url = JwksSource::parse(&format!("http://{addr}/jwks"));
        assert!(matches!(url, JwksSource::Url(_)));
        let issuer = Issuer::start(config(url)).await.unwrap();
        let a = token(KEY_A, "key-a", "https://id.example", "pace", 60);
        assert_eq!(issuer.verify(&a), Ok("ann".into()));
        assert_eq!(fetches.load(Ordering::SeqCst), 1);

        // The provider rotates: B in, A out. B's first token wakes a fetch.
        *served.write().unwrap() = set(&[JWK_B]);
        let b = token(KEY_B, "key-b", "https://id.example", "pace", 60);
        let deadline = Instant::now() + Duration::from_secs(30);
        while issuer.verify(&b).is_err() {
            assert!(Instant::now() < deadline, "key B never fetched");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(matches!(issuer.verify(&a), Err(AuthError::Invalid(_))));
        let after_rotation = fetches.load(Ordering::SeqCst);
        assert_eq!(after_rotation, 2);
        // A hundred made-up key ids: one fetch at most (and not before
        // REFETCH_AT_MOST has passed).
        for i in 0..100 {
            let made_up = token(
                KEY_B,
                &format!("nope-{i}"),
                "https://id.example",
                "pace",
                60,
            );
            assert!(issuer.verify(&made_up).is_err());
        }
        tokio::task::yield_now().await;
        assert_eq!(fetches.load(Ordering::SeqCst), after_rotation);

        // A provider that is not there: the edge does not start.
        let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let gone = format!("http://{}/jwks", gone.local_addr().unwrap());
        assert!(
            Issuer::start(config(JwksSource::parse(&gone)))
                .await
                .is_err()
        );
    }
}
