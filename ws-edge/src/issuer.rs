//! Tokens from an outside identity provider (an OIDC issuer): RS256 or
//! ES256 JWTs signed by a key of its JWK set (`--jwks FILE`), with their
//! issuer (`--jwt-issuer`) and audience (`--jwt-audience`) checked, beside
//! pace's own HS256 tokens. The set is read again when its file changes
//! (looked at at most once a second), so the provider's keys rotate
//! without a restart: a token signed by a key that left the set is
//! refused, one signed by a key just added is taken. A set that no longer
//! reads keeps the last good one, and says so in the log.

use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;

use crate::auth::{AuthError, CLOCK_SKEW_S};

/// How often the file's modification time is looked at, at most.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Where an issuer's keys are, and what its tokens must say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerConfig {
    /// The JWK set, as a file (`{"keys": […]}`).
    pub jwks: PathBuf,
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
}

#[derive(Debug)]
struct Keys {
    set: JwkSet,
    /// The file as last read.
    text: String,
    checked: Instant,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn parse(path: &Path, text: &str) -> Result<JwkSet, String> {
    serde_json::from_str(text).map_err(|e| format!("{}: not a JWK set: {e}", path.display()))
}

impl Issuer {
    /// The issuer `config` describes; its key set must read now.
    pub fn new(config: IssuerConfig) -> Result<Self, String> {
        let text = read(&config.jwks)?;
        let set = parse(&config.jwks, &text)?;
        Ok(Self {
            config,
            check_every: CHECK_EVERY,
            keys: RwLock::new(Keys {
                set,
                text,
                checked: Instant::now(),
            }),
        })
    }

    /// Reads the set again if its file changed since it was last read
    /// (looked at once a second at most).
    fn refresh(&self) {
        {
            let keys = self.keys.read().expect("keys lock");
            if keys.checked.elapsed() < self.check_every {
                return;
            }
        }
        let mut keys = self.keys.write().expect("keys lock");
        keys.checked = Instant::now();
        let read = read(&self.config.jwks);
        if read.as_ref().is_ok_and(|t| *t == keys.text) {
            return;
        }
        match read.and_then(|t| Ok((parse(&self.config.jwks, &t)?, t))) {
            Ok((set, text)) => {
                tracing::info!(keys = set.keys.len(), "JWK set changed; read again");
                keys.set = set;
                keys.text = text;
            }
            Err(e) => tracing::warn!(error = %e, "JWK set unreadable; keeping the last one"),
        }
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
            let jwk = keys
                .set
                .find(&kid)
                .ok_or_else(|| invalid(format!("no key {kid:?} in the issuer's set")))?;
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

    #[test]
    fn an_issuers_tokens_are_checked_against_its_keys_issuer_and_audience() {
        let dir = tempfile::tempdir().unwrap();
        let jwks = dir.path().join("jwks.json");
        std::fs::write(&jwks, set(&[JWK_A])).unwrap();
        let mut issuer = Issuer::new(IssuerConfig {
            jwks: jwks.clone(),
            issuer: "https://id.example".into(),
            audience: "pace".into(),
        })
        .unwrap();
        issuer.check_every = Duration::ZERO;
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
        assert!(
            Issuer::new(IssuerConfig {
                jwks: dir.path().join("missing.json"),
                issuer: "x".into(),
                audience: "y".into(),
            })
            .is_err()
        );
    }
}
