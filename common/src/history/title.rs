//! The one rule for session titles, whether a client sets one (`PATCH`) or the text provider
//! writes it: at most [`MAX_CHARS`] characters, and none that could hide or reorder what a list
//! shows: control characters (C0, DEL and C1) and bidirectional overrides and isolates.

/// Longest title, in characters.
pub const MAX_CHARS: usize = 200;

/// Whether a character is refused in a title.
pub fn forbidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{202A}'..='\u{202E}' // embeddings and overrides (LRE, RLE, PDF, LRO, RLO)
            | '\u{2066}'..='\u{2069}' // isolates (LRI, RLI, FSI, PDI)
            | '\u{200E}' | '\u{200F}' | '\u{061C}') // directional marks
}

/// Why a title is refused, for the client.
pub fn check(title: &str) -> Result<&str, String> {
    let title = title.trim();
    let chars = title.chars().count();
    if chars == 0 || chars > MAX_CHARS {
        return Err(format!("title must be 1 to {MAX_CHARS} characters"));
    }
    if title.chars().any(forbidden) {
        return Err("title must not contain control characters or bidirectional overrides".into());
    }
    Ok(title)
}

/// Text made fit for a title: each forbidden character becomes a space, white space collapses.
pub fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| if forbidden(c) { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_overrides_are_refused_and_sanitized() {
        assert_eq!(check("  Trip plans "), Ok("Trip plans"));
        for bad in [
            "a\u{1b}[31mb",
            "bell\u{7}",
            "c1\u{85}x",
            "evil\u{202E}txt",
            "iso\u{2067}x",
        ] {
            assert!(check(bad).is_err(), "{bad:?}");
            assert!(check(&sanitize(bad)).is_ok(), "{bad:?}");
        }
        assert_eq!(sanitize("evil\u{202E}txt.exe\n"), "evil txt.exe");
        assert!(check(&"x".repeat(MAX_CHARS + 1)).is_err());
        assert!(check(" ").is_err());
    }
}
