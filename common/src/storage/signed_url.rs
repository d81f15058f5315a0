//! The gateway URLs of the local backend: `{base}/api/v1/storage/files/{key}?expires=&sig=`,
//! signed with HMAC-SHA256 over tenant, key and expiry, so a URL opens one object of one tenant
//! until it expires and nothing else.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::Sha256;
use uuid::Uuid;

use crate::settings::Secret;

type HmacSha256 = Hmac<Sha256>;

/// The gateway route that serves signed URLs; the key follows it.
pub const FILES_PATH: &str = "/api/v1/storage/files";

/// Label of the key derivation, so the URL key differs from the secret it came from (the JWT
/// secret, when no URL secret is set) and a token signature can never be a URL signature.
const KEY_LABEL: &[u8] = b"aibackend storage url signing v1";

/// What a key segment keeps unescaped: RFC 3986 unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Signs and checks URLs; its key never appears in `Debug`.
#[derive(Clone)]
pub struct UrlSigner {
    key: [u8; 32],
}

impl fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UrlSigner(***)")
    }
}

/// Why a signed URL was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefusal {
    /// The signature is not this server's for this tenant, key and expiry.
    #[error("invalid signature")]
    BadSignature,
    /// The signature is right but its time has passed.
    #[error("this link has expired")]
    Expired,
}

impl UrlSigner {
    /// A signer whose key is derived from `secret`.
    pub fn new(secret: &Secret) -> Self {
        Self {
            key: derive(secret.expose().as_bytes()),
        }
    }

    fn mac(&self, tenant: Uuid, key: &str, expires: u64) -> HmacSha256 {
        let mut mac = derive_mac(&self.key);
        mac.update(format!("v1\n{tenant}\n{key}\n{expires}").as_bytes());
        mac
    }

    /// The signature (unpadded base64url) of `tenant`'s `key` until `expires` (Unix seconds).
    pub fn sign(&self, tenant: Uuid, key: &str, expires: u64) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(tenant, key, expires).finalize().into_bytes())
    }

    /// Checks a signature in constant time, then the expiry against `now` (Unix seconds).
    pub fn verify(
        &self,
        tenant: Uuid,
        key: &str,
        expires: u64,
        sig: &str,
        now: u64,
    ) -> Result<(), UrlRefusal> {
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| UrlRefusal::BadSignature)?;
        self.mac(tenant, key, expires)
            .verify_slice(&sig)
            .map_err(|_| UrlRefusal::BadSignature)?;
        if now >= expires {
            return Err(UrlRefusal::Expired);
        }
        Ok(())
    }

    /// The URL of `tenant`'s `key` until `expires`, under `base` (empty: a path, relative to the
    /// gateway that serves it).
    pub fn url(&self, base: &str, tenant: Uuid, key: &str, expires: u64) -> String {
        let path: Vec<String> = key
            .split('/')
            .map(|segment| utf8_percent_encode(segment, SEGMENT).to_string())
            .collect();
        format!(
            "{}{FILES_PATH}/{}?expires={expires}&sig={}",
            base.trim_end_matches('/'),
            path.join("/"),
            self.sign(tenant, key, expires)
        )
    }
}

fn derive_mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    }
}

fn derive(secret: &[u8]) -> [u8; 32] {
    let mut mac = derive_mac(secret);
    mac.update(KEY_LABEL);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_signature_opens_one_key_of_one_tenant_until_it_expires() {
        let signer = UrlSigner::new(&Secret::new("s3cret"));
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let key = format!("{a}/tts/x.mp3");
        let sig = signer.sign(a, &key, 100);
        assert_eq!(signer.verify(a, &key, 100, &sig, 99), Ok(()));
        assert_eq!(
            signer.verify(a, &key, 100, &sig, 100),
            Err(UrlRefusal::Expired)
        );
        let other = format!("{a}/tts/y.mp3");
        for (tenant, key, expires) in [(b, key.as_str(), 100), (a, &other, 100), (a, &key, 101)] {
            assert_eq!(
                signer.verify(tenant, key, expires, &sig, 0),
                Err(UrlRefusal::BadSignature)
            );
        }
        assert_eq!(
            signer.verify(a, &key, 100, "not base64!", 0),
            Err(UrlRefusal::BadSignature)
        );
        let other_server = UrlSigner::new(&Secret::new("another"));
        assert_eq!(
            other_server.verify(a, &key, 100, &sig, 0),
            Err(UrlRefusal::BadSignature)
        );
        assert!(!format!("{signer:?}").contains("s3cret"));
    }

    #[test]
    fn urls_escape_each_segment() {
        let signer = UrlSigner::new(&Secret::new("k"));
        let a = Uuid::nil();
        let url = signer.url(
            "https://api.example/",
            a,
            &format!("{a}/uploads/é x.mp3"),
            7,
        );
        assert!(
            url.starts_with(&format!(
                "https://api.example/api/v1/storage/files/{a}/uploads/%C3%A9%20x.mp3?expires=7&sig="
            )),
            "{url}"
        );
        assert!(
            signer
                .url("", a, "k", 7)
                .starts_with("/api/v1/storage/files/k?")
        );
    }
}
