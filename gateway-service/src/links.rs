//! Where the links of an answer point (a job's `status_url` and `websocket_url`, an image's URL):
//! the public base of the deployment, or the host the request was sent to.

use axum::http::{HeaderMap, header};

use crate::state::AppState;

/// `STORAGE__PUBLIC_BASE_URL` when set, else the host the request was sent to
/// (`X-Forwarded-Proto` says whether through TLS): `http://host`, without a trailing `/`.
pub fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(base) = &state.settings().storage.public_base_url {
        return base.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    format!("{proto}://{host}")
}

/// The WebSocket base of an HTTP `base` (`https://h` → `wss://h`, `http://h` → `ws://h`); empty
/// for a base of another scheme.
pub fn websocket_base(base: &str) -> String {
    base.strip_prefix("https://")
        .map(|rest| format!("wss://{rest}"))
        .or_else(|| {
            base.strip_prefix("http://")
                .map(|rest| format!("ws://{rest}"))
        })
        .unwrap_or_default()
}

/// `url` as an absolute URL: a path (the local storage's signed URLs, `/api/v1/storage/…`) is
/// put under `base`; an absolute URL (S3's presigned ones) is left as it is.
pub fn absolute(base: &str, url: &str) -> String {
    if url.starts_with('/') {
        format!("{}{url}", base.trim_end_matches('/'))
    } else {
        url.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_follow_the_base() {
        assert_eq!(websocket_base("https://api.x"), "wss://api.x");
        assert_eq!(websocket_base("http://127.0.0.1:8"), "ws://127.0.0.1:8");
        assert_eq!(websocket_base("ftp://x"), "");
        assert_eq!(absolute("http://h/", "/a/b?c=1"), "http://h/a/b?c=1");
        assert_eq!(absolute("http://h", "https://s3/x"), "https://s3/x");
    }
}
