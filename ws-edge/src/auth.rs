//! Identity: users present a signed token (JWT, HS256) naming them. The edge
//! and `pace token` share a secret; a token says who the user is (`sub`) and
//! until when (`exp`). jsonwebtoken does the signing and checking: a
//! hand-rolled HMAC and base64 would be more code to get wrong.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
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
    /// The token is not one this edge's secret signed, or is malformed.
    #[error("the token is not valid: {0}")]
    Invalid(String),
}

/// Issues a token for `user`, valid for `ttl_s` seconds from `now_s` (Unix).
pub fn issue(secret: &str, user: &str, now_s: u64, ttl_s: u64) -> String {
    let claims = Claims {
        sub: user.to_owned(),
        exp: now_s + ttl_s,
    };
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing does not fail")
}

/// The user a token names, if `secret` signed it and it has not expired.
pub fn verify(secret: Option<&str>, token: Option<&str>) -> Result<String, AuthError> {
    let secret = secret.ok_or(AuthError::NotConfigured)?;
    let token = token.filter(|t| !t.is_empty()).ok_or(AuthError::Missing)?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "sub"]);
    let data = decode::<Claims>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
        _ => AuthError::Invalid(e.to_string()),
    })?;
    schemas::validate::id("sub", &data.claims.sub)
        .map_err(|e| AuthError::Invalid(e.to_string()))?;
    Ok(data.claims.sub)
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
}
