//! What the simulated recogniser hears: the configured transcript, cut into words and sentences
//! and laid over the audio's timeline, shared by every speech-to-text format.
//!
//! The rule: an uploaded clip holds the whole transcript once, word `i` of `n` spanning
//! `[i·d/n, (i+1)·d/n)` of the clip's duration `d`; a live stream speaks word `k` of the
//! transcript repeated over and over (`k mod n`) during `[k·w, (k+1)·w)`, `w` being
//! `SimConfig::live_word`. A sentence ends at a word ending in `.`, `?` or `!`, or at the
//! transcript's last word.

use std::ops::Range;
use std::time::Duration;

/// Confidence the simulator reports for every word and transcript.
pub(crate) const CONFIDENCE: f64 = 0.99;

/// One word as configured (`text`, punctuation and case kept) and as a recogniser writes it
/// without formatting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Word {
    text: String,
    /// Punctuation around the word removed, case kept (OpenAI's `words[].word`).
    trimmed: String,
    /// The word ends a sentence.
    sentence_end: bool,
}

impl Word {
    fn new(text: &str) -> Self {
        let trimmed = text.trim_matches(|c: char| !c.is_alphanumeric());
        Self {
            text: text.to_owned(),
            // A word of punctuation only (a dash) keeps its text rather than vanishing.
            trimmed: if trimmed.is_empty() { text } else { trimmed }.to_owned(),
            sentence_end: text.ends_with(['.', '?', '!']),
        }
    }

    /// The word as configured, punctuated.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// The word without the punctuation around it.
    pub(crate) fn trimmed(&self) -> &str {
        &self.trimmed
    }

    /// The word as an unformatted recogniser writes it: lower case, no punctuation
    /// (Deepgram's `word`).
    pub(crate) fn bare(&self) -> String {
        self.trimmed.to_lowercase()
    }
}

/// The configured transcript as words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Transcript {
    words: Vec<Word>,
}

impl Transcript {
    pub(crate) fn new(text: &str) -> Self {
        Self {
            words: text.split_whitespace().map(Word::new).collect(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.words.len()
    }

    /// Word `k` of the transcript spoken over and over; `None` if it has no words.
    pub(crate) fn cyclic(&self, k: usize) -> Option<&Word> {
        self.words.get(k.checked_rem(self.words.len())?)
    }

    /// Whether spoken word `k` (counting as [`Transcript::cyclic`] does) ends a sentence.
    pub(crate) fn ends_sentence(&self, k: usize) -> bool {
        let n = self.words.len();
        n > 0 && (k % n == n - 1 || self.cyclic(k).is_some_and(|w| w.sentence_end))
    }

    /// The words of `range` joined with spaces: punctuated as configured, or bare.
    pub(crate) fn join(&self, range: Range<usize>, punctuated: bool) -> String {
        range
            .filter_map(|k| self.cyclic(k))
            .map(|w| if punctuated { w.text.clone() } else { w.bare() })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The whole transcript, punctuated as configured.
    pub(crate) fn text(&self) -> String {
        self.join(0..self.len(), true)
    }

    /// The sentences, as ranges of word indexes.
    pub(crate) fn sentences(&self) -> Vec<Range<usize>> {
        let mut sentences = Vec::new();
        let mut start = 0;
        for k in 0..self.len() {
            if self.ends_sentence(k) {
                sentences.push(start..k + 1);
                start = k + 1;
            }
        }
        sentences
    }

    /// Every word with its time in a clip lasting `duration`, the words sharing it evenly.
    pub(crate) fn spread(&self, duration: Duration) -> Vec<Timed<'_>> {
        let n = self.len();
        let slot = duration.as_secs_f64() / n.max(1) as f64;
        self.words
            .iter()
            .enumerate()
            .map(|(i, word)| Timed {
                word,
                start: seconds(i as f64 * slot),
                end: seconds((i + 1) as f64 * slot),
            })
            .collect()
    }
}

/// A word and when it is heard, in seconds from the start of the audio.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Timed<'a> {
    pub(crate) word: &'a Word,
    pub(crate) start: f64,
    pub(crate) end: f64,
}

/// Seconds rounded to the millisecond, as the providers report them.
pub(crate) fn seconds(secs: f64) -> f64 {
    (secs * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_keep_their_punctuation_and_lose_it_when_bare() {
        let transcript = Transcript::new("  Hello, world!  Don't panic. -- ");
        let words: Vec<_> = transcript.words.iter().map(Word::text).collect();
        assert_eq!(words, ["Hello,", "world!", "Don't", "panic.", "--"]);
        let trimmed: Vec<_> = transcript.words.iter().map(Word::trimmed).collect();
        assert_eq!(trimmed, ["Hello", "world", "Don't", "panic", "--"]);
        assert_eq!(transcript.words[2].bare(), "don't");
        assert_eq!(transcript.text(), "Hello, world! Don't panic. --");
        assert_eq!(transcript.join(0..2, false), "hello world");
    }

    #[test]
    fn sentences_end_at_full_stops_and_at_the_last_word() {
        let transcript = Transcript::new("One two. Three four? Five");
        assert_eq!(transcript.sentences(), [0..2, 2..4, 4..5]);
        // Spoken over and over, the transcript ends a sentence every time it ends.
        assert!(transcript.ends_sentence(9));
        assert!(transcript.ends_sentence(6));
        assert!(!transcript.ends_sentence(7));
        assert_eq!(transcript.cyclic(7).map(Word::text), Some("Three"));
        assert_eq!(Transcript::new("").cyclic(3), None);
        assert!(!Transcript::new("").ends_sentence(0));
        assert!(Transcript::new("").sentences().is_empty());
    }

    #[test]
    fn words_share_the_duration_evenly() {
        let transcript = Transcript::new("a b c d");
        let timed = transcript.spread(Duration::from_secs(2));
        let times: Vec<_> = timed.iter().map(|t| (t.start, t.end)).collect();
        assert_eq!(times, [(0.0, 0.5), (0.5, 1.0), (1.0, 1.5), (1.5, 2.0)]);
        let three = Transcript::new("a b c");
        let thirds = three.spread(Duration::from_secs(1));
        assert_eq!(thirds[1].start, 0.333);
        assert_eq!(thirds[2].end, 1.0);
    }
}
