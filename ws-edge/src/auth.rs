//! Identity: users present a signed token (JWT, HS256) naming them. The edge
//! and `pace token` share a secret; a token says who the user is (`sub`),
//! who issued it (`iss`, [`ISSUER`]), when (`iat`), from when (`nbf`) and
//! until when (`exp`) it holds. Every one of those is checked: a token from
//! the future (`iat` or `nbf` more than [`CLOCK_SKEW_S`] ahead), an expired
//! one, or one from another issuer is refused. A token issued at a login
//! names its session (`sid`): once the session ends (a logout, a reused
//! refresh token), the edge refuses it before it expires
//! ([`crate::input::EdgeInput::user`]). jsonwebtoken does the
//! signing and checking: a hand-rolled HMAC and base64 would be more code to
//! get wrong.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

/// The issuer of pace's own tokens.
pub const ISSUER: &str = "pace";
/// How far ahead of this edge's clock a token's `iat` or `nbf` may be
/// (clocks of the machine that issued it and this one differ a little).
pub const CLOCK_SKEW_S: u64 = 5;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iss: String,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token was presented.
    #[error("a token is needed (Authorization: Bearer …, or ?token=…)")]
    Missing,
    /// The edge has no secret configured, so it checks no token.
    #[error("this edge has no token secret (PACE_TOKEN_SECRET); it accepts no posts")]
    NotConfigured,
    /// The token has expired.
    #[error("the token has expired")]
    Expired,
    /// The token is not valid yet (`nbf`), or says it was issued later
    /// than now (`iat`).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// The token is not one this edge's secret signed, or is malformed.
    #[error("the token is not valid: {0}")]
    Invalid(String),
    /// The session the token was issued for has ended (a logout).
    #[error("the session has ended; log in again")]
    Revoked,
}

/// Issues a token for `user`, valid for `ttl_s` seconds from `now_s` (Unix).
pub fn issue(secret: &str, user: &str, now_s: u64, ttl_s: u64) -> String {
    issue_claims(secret, user, now_s, now_s, now_s + ttl_s)
}

/// Issues a token for `user` issued at `iat`, valid from `nbf` until `exp`
/// (Unix seconds).
pub fn issue_claims(secret: &str, user: &str, iat: u64, nbf: u64, exp: u64) -> String {
    sign(
        secret,
        &Claims {
            sub: user.to_owned(),
            iss: ISSUER.to_owned(),
            exp,
            iat: Some(iat),
            nbf: Some(nbf),
            sid: None,
        },
    )
}

/// Issues a token for `user`'s session `sid` (a login's), valid for
/// `ttl_s` seconds from `now_s`.
pub fn issue_session(secret: &str, user: &str, sid: &str, now_s: u64, ttl_s: u64) -> String {
    sign(
        secret,
        &Claims {
            sub: user.to_owned(),
            iss: ISSUER.to_owned(),
            exp: now_s + ttl_s,
            iat: Some(now_s),
            nbf: Some(now_s),
            sid: Some(sid.to_owned()),
        },
    )
}

fn sign(secret: &str, claims: &Claims) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing does not fail")
}

/// The user a token names, if `secret` signed it and it has not expired.
pub fn verify(secret: Option<&str>, token: Option<&str>) -> Result<String, AuthError> {
    verify_session(secret, token).map(|(user, _)| user)
}

/// The user a token names and the session it was issued for (none for a
/// token not issued at a login), if `secret` signed it and it has not
/// expired.
pub fn verify_session(
    secret: Option<&str>,
    token: Option<&str>,
) -> Result<(String, Option<String>), AuthError> {
    let secret = secret.ok_or(AuthError::NotConfigured)?;
    let token = token.filter(|t| !t.is_empty()).ok_or(AuthError::Missing)?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    // nbf and iat are checked below, with the clock skew allowed.
    validation.validate_nbf = false;
    validation.set_issuer(&[ISSUER]);
    validation.set_required_spec_claims(&["exp", "sub", "iss"]);
    let data = decode::<Claims>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
        _ => AuthError::Invalid(e.to_string()),
    })?;
    let latest = now_s() + CLOCK_SKEW_S;
    let claims = data.claims;
    if claims.nbf.is_some_and(|t| t > latest) || claims.iat.is_some_and(|t| t > latest) {
        return Err(AuthError::NotYetValid);
    }
    schemas::validate::id("sub", &claims.sub).map_err(|e| AuthError::Invalid(e.to_string()))?;
    Ok((claims.sub, claims.sid))
}

/// The current Unix time, seconds.
pub fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_user_until_they_expire() {
        let now = now_s();
        let t = issue("s3cret", "ann", now, 60);
        assert_eq!(verify(Some("s3cret"), Some(&t)), Ok("ann".into()));
        assert!(matches!(
            verify(Some("other"), Some(&t)),
            Err(AuthError::Invalid(_))
        ));
        let old = issue("s3cret", "ann", now - 120, 60);
        assert_eq!(verify(Some("s3cret"), Some(&old)), Err(AuthError::Expired));
        assert_eq!(verify(Some("s3cret"), None), Err(AuthError::Missing));
        assert_eq!(verify(None, Some(&t)), Err(AuthError::NotConfigured));
        // A token with its payload swapped for another user's is refused.
        let bob = issue("s3cret", "bob", now, 60);
        let forged = format!(
            "{}.{}.{}",
            t.split('.').next().unwrap(),
            bob.split('.').nth(1).unwrap(),
            t.split('.').nth(2).unwrap()
        );
        assert!(matches!(
            verify(Some("s3cret"), Some(&forged)),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn a_logins_token_names_its_session() {
        let now = now_s();
        let t = issue_session("s", "ann", "sess-1", now, 60);
        assert_eq!(
            verify_session(Some("s"), Some(&t)),
            Ok(("ann".into(), Some("sess-1".into())))
        );
        assert_eq!(verify(Some("s"), Some(&t)), Ok("ann".into()));
        let plain = issue("s", "ann", now, 60);
        assert_eq!(
            verify_session(Some("s"), Some(&plain)),
            Ok(("ann".into(), None))
        );
    }

    #[test]
    fn tokens_from_the_future_or_another_issuer_are_refused() {
        let now = now_s();
        let later = issue_claims("s", "ann", now, now + 3600, now + 7200);
        assert_eq!(verify(Some("s"), Some(&later)), Err(AuthError::NotYetValid));
        let from_the_future = issue_claims("s", "ann", now + 3600, now, now + 7200);
        assert_eq!(
            verify(Some("s"), Some(&from_the_future)),
            Err(AuthError::NotYetValid)
        );
        let skewed = issue_claims("s", "ann", now + 2, now + 2, now + 60);
        assert_eq!(verify(Some("s"), Some(&skewed)), Ok("ann".into()));
        // Signed with the secret, but by someone else, or by nobody.
        let foreign = encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "ann", "iss": "other", "exp": now + 60}),
            &EncodingKey::from_secret(b"s"),
        )
        .unwrap();
        assert!(matches!(
            verify(Some("s"), Some(&foreign)),
            Err(AuthError::Invalid(_))
        ));
        let anonymous = encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "ann", "exp": now + 60}),
            &EncodingKey::from_secret(b"s"),
        )
        .unwrap();
        assert!(matches!(
            verify(Some("s"), Some(&anonymous)),
            Err(AuthError::Invalid(_))
        ));
    }
}
