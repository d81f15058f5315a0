//! How close a transcript is to what was said: the word error rate the transcription tests and
//! the offline model's benchmark (`examples/stt_local.rs`) report.

/// The words of a text as transcripts are compared: lower case, without punctuation or
/// apostrophes (`It's` and `its` are one word).
pub fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .replace(['\'', '\u{2019}'], "")
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The word error rate of `heard` against `reference`: the fewest word substitutions, insertions
/// and deletions that turn one into the other, over the reference's word count (0 is perfect;
/// it can pass 1 when much is inserted).
pub fn word_error_rate(reference: &str, heard: &str) -> f64 {
    let (r, h) = (words(reference), words(heard));
    // One row of the edit-distance table at a time.
    let mut row: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, hw) in h.iter().enumerate() {
            let substitution = diagonal + usize::from(rw != hw);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[h.len()] as f64 / r.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punctuation_and_case_do_not_count() {
        let said = "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better.";
        let heard = "ever tried, ever failed. No matter! Try again; fail again. Fail better";
        assert_eq!(word_error_rate(said, heard), 0.0);
        assert_eq!(words("It’s 9 o'clock"), ["its", "9", "oclock"]);
    }

    #[test]
    fn each_slip_counts_once() {
        // One substitution and one deletion in four words.
        assert!((word_error_rate("a b c d", "a x c") - 0.5).abs() < 1e-9);
        // Two insertions in two words.
        assert_eq!(word_error_rate("a b", "a b c d"), 1.0);
        assert_eq!(word_error_rate("", ""), 0.0);
    }
}
