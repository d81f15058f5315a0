//! From the tokens Whisper writes to timed text: GPT-2's byte-level BPE pieces back to UTF-8,
//! and the timestamp tokens (`<|1.24|>`) that open and close each segment.
//!
//! The model answers with its vocabulary's strings, so decoding needs only the fixed byte table
//! below, not a tokenizer (the `tokenizers` crate would bring its own regex engine and
//! vocabulary loading for what is a 256-entry table).

/// A piece of a window's text with where it is in the window, seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    /// Where it starts.
    pub start: f64,
    /// Where it ends.
    pub end: f64,
    /// What was said, trimmed.
    pub text: String,
}

/// The byte each character of GPT-2's byte-level alphabet stands for (`bytes_to_unicode`
/// inverted): printable Latin-1 characters stand for themselves, the other 68 bytes for the
/// characters from U+0100 on, in order.
fn byte_of(c: char) -> Option<u8> {
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
    let code = c as u32;
    if code < 256 {
        return printable(code).then_some(code as u8);
    }
    let index = code - 256;
    (0u32..256)
        .filter(|&b| !printable(b))
        .nth(index as usize)
        .map(|b| b as u8)
}

/// A timestamp token's time, `<|12.34|>` → 12.34.
fn timestamp(token: &str) -> Option<f64> {
    token
        .strip_prefix("<|")?
        .strip_suffix("|>")?
        .parse::<f64>()
        .ok()
}

/// The segments of one window's tokens. Text is cut where a timestamp follows it; text before
/// any timestamp starts at 0, and text after the last one ends at `window_secs`. Other special
/// tokens (`<|endoftext|>`) are dropped.
pub fn pieces(tokens: &[String], window_secs: f64) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut bytes: Vec<u8> = Vec::new();
    let mut start: Option<f64> = None;
    let mut last_end = 0.0;
    let mut close = |bytes: &mut Vec<u8>, start: f64, end: f64| {
        let text = String::from_utf8_lossy(bytes).trim().to_owned();
        bytes.clear();
        if !text.is_empty() {
            out.push(Piece {
                start,
                end: end.max(start),
                text,
            });
        }
    };
    for token in tokens {
        if let Some(t) = timestamp(token) {
            if bytes.is_empty() {
                start = Some(t);
            } else {
                close(&mut bytes, start.unwrap_or(last_end), t);
                start = None;
            }
            last_end = t;
        } else if token.starts_with("<|") && token.ends_with("|>") {
            continue;
        } else {
            // A character outside the alphabet cannot come from the model; it is kept as it is.
            for c in token.chars() {
                match byte_of(c) {
                    Some(b) => bytes.push(b),
                    None => bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                }
            }
        }
    }
    close(&mut bytes, start.unwrap_or(last_end), window_secs);
    out
}

/// Whether a segment is one of Whisper's non-speech captions (`[BLANK_AUDIO]`, `(silence)`,
/// `[Music]`, `*sigh*`), which it writes for silence and noise rather than words.
pub fn is_caption(text: &str) -> bool {
    let t = text.trim();
    let wrapped = |open: char, close: char| {
        t.starts_with(open)
            && t.ends_with(close)
            && t.len() >= 2
            && !t[1..t.len() - 1].contains(close)
    };
    t.is_empty() || wrapped('[', ']') || wrapped('(', ')') || wrapped('*', '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn byte_level_pieces_become_text() {
        // "Ġ" is the space, "âĢĻ" the UTF-8 of a right single quote, "Ã©" that of "é".
        let t = tokens(&["ĠEver", "Ġtried", ".", "ĠIt", "âĢĻs", "ĠcafÃ©"]);
        let p = pieces(&t, 3.0);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].text, "Ever tried. It\u{2019}s café");
        assert_eq!((p[0].start, p[0].end), (0.0, 3.0));
        assert_eq!(byte_of('Ġ'), Some(b' '));
        assert_eq!(byte_of('Ċ'), Some(b'\n'));
        assert_eq!(byte_of('A'), Some(b'A'));
    }

    #[test]
    fn timestamps_cut_segments() {
        let t = tokens(&[
            "<|0.00|>",
            "ĠEver",
            "Ġtried",
            ".",
            "<|1.50|>",
            "<|1.50|>",
            "ĠEver",
            "Ġfailed",
            ".",
            "<|3.20|>",
            "<|4.00|>",
            "ĠNo",
            "Ġmatter",
            "<|endoftext|>",
        ]);
        let p = pieces(&t, 6.0);
        let got: Vec<_> = p
            .iter()
            .map(|p| (p.start, p.end, p.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (0.0, 1.5, "Ever tried."),
                (1.5, 3.2, "Ever failed."),
                (4.0, 6.0, "No matter"),
            ]
        );
        assert!(pieces(&tokens(&["<|0.00|>", "<|endoftext|>"]), 1.0).is_empty());
    }

    #[test]
    fn captions_are_not_speech() {
        for caption in ["[BLANK_AUDIO]", " (silence) ", "[Music]", "*sighs*", ""] {
            assert!(is_caption(caption), "{caption:?}");
        }
        for speech in [
            "you",
            "[laughs] and then",
            "Try again. (Fail.) Fail better.",
        ] {
            assert!(!is_caption(speech), "{speech:?}");
        }
    }
}
