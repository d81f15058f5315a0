//! JWT authentication (DESIGN §6): HS256 with `JWT_SECRET`, RS256 by configuration.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::settings::{CoreSettings, DEV_JWT_SECRET};

/// A caller's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An ordinary user.
    User,
    /// May use admin-only endpoints.
    Admin,
}

/// The claims of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    /// The tenant the user belongs to.
    pub tenant_id: Uuid,
    /// The user's role.
    pub role: Role,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Not valid before, seconds since the Unix epoch (checked when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

impl Claims {
    /// Whether the token has expired by now (with the verification leeway).
    pub fn expired(&self) -> bool {
        unix_now() > self.exp + LEEWAY_SECS
    }
}

/// Clock skew tolerated on `exp` and `nbf`, seconds.
pub const LEEWAY_SECS: u64 = 5;

/// Why a token was refused. The message is safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token was given.
    #[error("missing token")]
    Missing,
    /// The token has expired.
    #[error("token expired")]
    Expired,
    /// The token is not valid yet (`nbf` in the future).
    #[error("token not valid yet")]
    NotYetValid,
    /// Bad signature, wrong algorithm (`none` included), malformed or missing claims.
    #[error("invalid token")]
    Invalid,
    /// This service cannot mint tokens (RS256 without a private key).
    #[error("token signing is not configured")]
    CannotSign,
}

/// Verifies (and, where configured, signs) tokens.
#[derive(Clone)]
pub struct JwtAuth {
    algorithm: Algorithm,
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
    validation: Validation,
}

impl std::fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuth")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl JwtAuth {
    /// Builds keys from settings (call `CoreSettings::check` first).
    pub fn from_settings(s: &CoreSettings) -> Result<Self, crate::settings::SettingsError> {
        let invalid = |what: &str, e: jsonwebtoken::errors::Error| {
            crate::settings::SettingsError::Invalid(format!("{what}: {e}"))
        };
        if s.jwt_algorithm == "RS256" {
            let public = s.jwt_public_key_pem.as_deref().unwrap_or_default();
            let decoding = DecodingKey::from_rsa_pem(public.as_bytes())
                .map_err(|e| invalid("JWT_PUBLIC_KEY_PEM", e))?;
            let encoding = match &s.jwt_private_key_pem {
                Some(p) => Some(
                    EncodingKey::from_rsa_pem(p.expose().as_bytes())
                        .map_err(|e| invalid("JWT_PRIVATE_KEY_PEM", e))?,
                ),
                None => None,
            };
            return Ok(Self::build(Algorithm::RS256, decoding, encoding));
        }
        let secret = s
            .jwt_secret
            .as_ref()
            .map(|s| s.expose().to_owned())
            .unwrap_or_else(|| DEV_JWT_SECRET.to_owned());
        Ok(Self::hs256(secret.as_bytes()))
    }

    /// HS256 with the given secret.
    pub fn hs256(secret: &[u8]) -> Self {
        Self::build(
            Algorithm::HS256,
            DecodingKey::from_secret(secret),
            Some(EncodingKey::from_secret(secret)),
        )
    }

    fn build(algorithm: Algorithm, decoding: DecodingKey, encoding: Option<EncodingKey>) -> Self {
        // Only the configured algorithm is accepted: `none` and algorithm confusion are refused.
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            algorithm,
            decoding,
            encoding,
            validation,
        }
    }

    /// Verifies a token and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                _ => AuthError::Invalid,
            })
    }

    /// Signs a token for the given identity, valid for `ttl`.
    pub fn issue(
        &self,
        user: Uuid,
        tenant: Uuid,
        role: Role,
        ttl: Duration,
    ) -> Result<String, AuthError> {
        let now = unix_now();
        let claims = Claims {
            sub: user,
            tenant_id: tenant,
            role,
            exp: now + ttl.as_secs(),
            nbf: Some(now),
        };
        self.sign(&claims)
    }

    /// Signs the given claims as they are.
    pub fn sign(&self, claims: &Claims) -> Result<String, AuthError> {
        let key = self.encoding.as_ref().ok_or(AuthError::CannotSign)?;
        jsonwebtoken::encode(&Header::new(self.algorithm), claims, key)
            .map_err(|_| AuthError::CannotSign)
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn encode(input: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(input)
    }

    #[test]
    fn issue_and_verify() {
        let auth = JwtAuth::hs256(b"s3cret");
        let (u, t) = (Uuid::now_v7(), Uuid::now_v7());
        let token = auth
            .issue(u, t, Role::Admin, Duration::from_secs(60))
            .unwrap();
        let claims = auth.verify(&token).unwrap();
        assert_eq!(
            (claims.sub, claims.tenant_id, claims.role),
            (u, t, Role::Admin)
        );
    }

    #[test]
    fn refuses_expired_wrong_key_and_alg_none() {
        let auth = JwtAuth::hs256(b"s3cret");
        let expired = Claims {
            sub: Uuid::now_v7(),
            tenant_id: Uuid::now_v7(),
            role: Role::User,
            exp: unix_now() - 3600,
            nbf: None,
        };
        assert_eq!(
            auth.verify(&auth.sign(&expired).unwrap()),
            Err(AuthError::Expired)
        );
        // Valid only from an hour ahead: refused until then.
        let early = Claims {
            exp: unix_now() + 7200,
            nbf: Some(unix_now() + 3600),
            ..expired
        };
        assert_eq!(
            auth.verify(&auth.sign(&early).unwrap()),
            Err(AuthError::NotYetValid)
        );
        let other = JwtAuth::hs256(b"other");
        let token = other
            .issue(
                Uuid::now_v7(),
                Uuid::now_v7(),
                Role::User,
                Duration::from_secs(60),
            )
            .unwrap();
        assert_eq!(auth.verify(&token), Err(AuthError::Invalid));
        let claims = serde_json::json!({"sub": Uuid::now_v7(), "tenant_id": Uuid::now_v7(),
            "role": "admin", "exp": unix_now() + 600});
        let none = format!(
            "{}.{}.",
            encode(br#"{"alg":"none","typ":"JWT"}"#),
            encode(claims.to_string().as_bytes())
        );
        assert_eq!(auth.verify(&none), Err(AuthError::Invalid));
        assert_eq!(auth.verify("garbage"), Err(AuthError::Invalid));
    }
}
