//! The rule every text a caller sends must meet before it is stored or used in a query: no NUL
//! (PostgreSQL refuses it in `text`, so it would surface as a 500 or a retried failure) and no
//! other C0 control character but tab, and a bounded length. Files a user cannot edit are cleaned
//! instead of refused ([`strip_controls`]).

use std::borrow::Cow;

/// A C0 control character (U+0000..U+001F) other than tab.
fn is_refused(c: char) -> bool {
    c < ' ' && c != '\t'
}

/// `Err` with a sentence naming `what` when `value` holds a NUL or another C0 control
/// character (tab is allowed), or is longer than `max_chars` characters.
pub fn check(what: &str, value: &str, max_chars: usize) -> Result<(), String> {
    if value.contains('\0') {
        return Err(format!("{what} must not contain a NUL character"));
    }
    if value.chars().any(is_refused) {
        return Err(format!(
            "{what} must not contain control characters (only tab is allowed)"
        ));
    }
    // Bytes bound characters from above: most values are decided without counting.
    if value.len() > max_chars && value.chars().count() > max_chars {
        return Err(format!("{what} is longer than {max_chars} characters"));
    }
    Ok(())
}

/// Whether `value` holds a character [`check`] refuses.
pub fn has_controls(value: &str) -> bool {
    value.chars().any(is_refused)
}

/// `value` without the characters [`check`] refuses.
pub fn strip_controls(value: &str) -> Cow<'_, str> {
    if has_controls(value) {
        Cow::Owned(value.chars().filter(|c| !is_refused(*c)).collect())
    } else {
        Cow::Borrowed(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_controls_and_length_are_refused_with_the_name() {
        assert_eq!(check("q", "Ana\tLima", 200), Ok(()));
        assert_eq!(
            check("q", "a\0b", 200),
            Err("q must not contain a NUL character".into())
        );
        assert_eq!(
            check("note", "a\nb", 200),
            Err("note must not contain control characters (only tab is allowed)".into())
        );
        assert_eq!(
            check("q", &"é".repeat(200), 200),
            Ok(()),
            "characters, not bytes"
        );
        assert_eq!(
            check("q", &"a".repeat(201), 200),
            Err("q is longer than 200 characters".into())
        );
        assert_eq!(strip_controls("Morning\0 Run\r\n"), "Morning Run");
        assert!(matches!(strip_controls("plain"), Cow::Borrowed("plain")));
    }
}
