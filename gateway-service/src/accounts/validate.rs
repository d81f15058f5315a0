//! Checks of what clients send when registering: email shape, password length, names.

use common::error::AppError;
use serde::de::DeserializeOwned;
use serde_json::error::Category;

/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest accepted password, in characters (bounds the hashing work one request can ask for).
pub const MAX_PASSWORD_CHARS: usize = 1024;
/// Longest display or tenant name, in characters.
const MAX_NAME_CHARS: usize = 100;

/// Parses a register or login body. serde's messages can quote the offending value (a password
/// sent as a number), and 400s are logged: keep only what names no value.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    serde_json::from_slice(body).map_err(|e| {
        let text = e.to_string();
        let safe = e.classify() != Category::Data
            || text.starts_with("missing field")
            || text.starts_with("unknown variant");
        if safe {
            bad(format!("invalid JSON body: {text}"))
        } else {
            bad(format!(
                "invalid JSON body: a field has the wrong type at line {} column {}",
                e.line(),
                e.column()
            ))
        }
    })
}

/// A 400 with a message for the client.
pub(super) fn bad(message: impl Into<String>) -> AppError {
    AppError::BadRequest(message.into())
}

/// The trimmed email if it looks like `local@domain.tld`.
pub(super) fn valid_email(raw: &str) -> Result<String, AppError> {
    let email = raw.trim();
    let invalid = || bad("email must look like name@example.com");
    if email.is_empty() || email.len() > 254 || email.chars().any(char::is_whitespace) {
        return Err(invalid());
    }
    let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
    let labels_ok = domain
        .split('.')
        .all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'));
    if local.is_empty()
        || local.len() > 64
        || domain.contains('@')
        || !domain.contains('.')
        || !labels_ok
        || email.chars().any(char::is_control)
    {
        return Err(invalid());
    }
    Ok(email.to_owned())
}

pub(super) fn valid_password(password: &str) -> Result<(), AppError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(bad(format!(
            "password must be at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(bad(format!(
            "password must be at most {MAX_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

/// A trimmed optional name; blank is absent.
pub(super) fn valid_name(value: Option<&str>, what: &str) -> Result<Option<String>, AppError> {
    let Some(name) = value.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(bad(format!(
            "{what} must be at most {MAX_NAME_CHARS} printable characters"
        )));
    }
    Ok(Some(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked_for_shape() {
        assert_eq!(
            valid_email("  Ann@Example.com ").unwrap(),
            "Ann@Example.com"
        );
        for bad in [
            "",
            "ann",
            "@example.com",
            "ann@",
            "ann@example",
            "ann@@example.com",
            "a b@example.com",
            "ann@-x.com",
            "ann@example..com",
        ] {
            assert!(valid_email(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn body_errors_never_quote_values() {
        #[derive(Debug, serde::Deserialize)]
        struct Body {
            #[allow(dead_code)]
            password: String,
        }
        let err = parse_body::<Body>(br#"{"password": 987654321}"#).unwrap_err();
        assert!(!err.to_string().contains("987654321"), "{err}");
        let err = parse_body::<Body>(b"{}").unwrap_err();
        assert!(
            err.to_string().contains("missing field `password`"),
            "{err}"
        );
    }

    #[test]
    fn passwords_need_eight_characters() {
        assert!(valid_password("1234567").is_err());
        assert!(valid_password("12345678").is_ok());
        assert!(valid_password("ééééééé").is_err());
        assert!(valid_password(&"x".repeat(MAX_PASSWORD_CHARS + 1)).is_err());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(valid_name(Some("  "), "n").unwrap(), None);
        assert_eq!(
            valid_name(Some(" Ann "), "n").unwrap().as_deref(),
            Some("Ann")
        );
        assert!(valid_name(Some(&"x".repeat(101)), "n").is_err());
    }
}
