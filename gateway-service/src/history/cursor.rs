//! Keyset cursors: a position `(timestamp, id)` in a newest-first list, sent to clients as an
//! opaque base64url token of `"<rfc3339>|<uuid>"`. The plain `"<rfc3339>|<uuid>"` form is
//! accepted too.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat, Utc};
use common::error::AppError;
use common::history::Key;
use uuid::Uuid;

/// The token for a position. Microseconds: PostgreSQL's precision, so the key round-trips exactly.
pub fn encode((at, id): Key) -> String {
    let plain = format!("{}|{id}", at.to_rfc3339_opts(SecondsFormat::Micros, true));
    URL_SAFE_NO_PAD.encode(plain)
}

/// The position a token names; 400 when it is not one.
pub fn decode(token: &str, what: &str) -> Result<Key, AppError> {
    let invalid = || AppError::BadRequest(format!("{what} is not a valid cursor"));
    let token = token.trim();
    let plain = if token.contains('|') {
        token.to_owned()
    } else {
        let bytes = URL_SAFE_NO_PAD
            .decode(token.trim_end_matches('='))
            .map_err(|_| invalid())?;
        String::from_utf8(bytes).map_err(|_| invalid())?
    };
    let (at, id) = plain.split_once('|').ok_or_else(invalid)?;
    let at = DateTime::parse_from_rfc3339(at).map_err(|_| invalid())?;
    let id: Uuid = id.parse().map_err(|_| invalid())?;
    Ok((at.with_timezone(&Utc), id))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trips_and_accepts_the_plain_form() {
        let key = (
            DateTime::parse_from_rfc3339("2026-11-22T10:11:12.123456Z")
                .unwrap()
                .with_timezone(&Utc),
            Uuid::now_v7(),
        );
        let token = encode(key);
        assert!(!token.contains('|'));
        assert_eq!(decode(&token, "cursor").unwrap(), key);
        let plain = format!("2026-11-22T10:11:12.123456+00:00|{}", key.1);
        assert_eq!(decode(&plain, "cursor").unwrap(), key);
        assert!(decode("nope", "cursor").is_err());
        assert!(decode("a|b", "cursor").is_err());
    }
}
