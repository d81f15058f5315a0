//! Cutting a document's text into chunks that the embedder reads whole: at most
//! `SEMANTIC__CHUNK_TOKENS` tokens each, consecutive chunks sharing up to
//! `SEMANTIC__CHUNK_OVERLAP_TOKENS`, cut at the largest boundary that fits (sections and
//! paragraphs, then sentences, then words). `text-splitter` does the cutting (Markdown by its
//! structure); the tokens are counted by the local model's own tokenizer (`tokenizer.json`), so
//! a chunk is never truncated by the model. Without that file (an `openai` deployment without
//! the local model) a token is taken as four characters, about what OpenAI's tokenizers give for
//! English.

use std::path::Path;

use text_splitter::{ChunkConfig, ChunkSizer, MarkdownSplitter, TextSplitter};
use tokenizers::Tokenizer;

/// How chunk sizes are counted.
#[derive(Debug, Clone)]
pub enum Sizer {
    /// Word pieces of the embedder's tokenizer (without `[CLS]` and `[SEP]`).
    Tokens(Box<Tokenizer>),
    /// Characters / 4.
    Chars,
}

impl ChunkSizer for Sizer {
    fn size(&self, chunk: &str) -> usize {
        match self {
            Self::Tokens(tokenizer) => tokenizer
                .encode_fast(chunk, false)
                .map_or_else(|_| chars(chunk), |e| e.len()),
            Self::Chars => chars(chunk),
        }
    }
}

fn chars(chunk: &str) -> usize {
    chunk.chars().count().div_ceil(4)
}

impl Sizer {
    /// The tokenizer in `model_dir` (`tokenizer.json`), without the truncation and padding the
    /// embedder applies; [`Sizer::Chars`] when the file is not there or not readable.
    pub fn from_model_dir(model_dir: &Path) -> Self {
        let path = model_dir.join("tokenizer.json");
        let Ok(mut tokenizer) = Tokenizer::from_file(&path) else {
            tracing::info!(
                path = %path.display(),
                "no tokenizer for chunking: a token is counted as four characters"
            );
            return Self::Chars;
        };
        if tokenizer.with_truncation(None).is_err() {
            return Self::Chars;
        }
        tokenizer.with_padding(None);
        Self::Tokens(Box::new(tokenizer))
    }

    /// Which counting this is, for logs and results.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Tokens(_) => "tokenizer",
            Self::Chars => "chars/4",
        }
    }
}

/// Cuts texts into overlapping chunks of a token budget.
#[derive(Debug, Clone)]
pub struct Chunker {
    sizer: Sizer,
    tokens: usize,
    overlap: usize,
}

impl Chunker {
    /// Chunks of at most `tokens` (at least 16), sharing up to `overlap` (less than half of
    /// `tokens`; larger values are lowered to that).
    pub fn new(sizer: Sizer, tokens: usize, overlap: usize) -> Self {
        let tokens = tokens.max(16);
        Self {
            sizer,
            tokens,
            overlap: overlap.min(tokens / 2 - 1),
        }
    }

    /// The chunks of `text` (Markdown cut by its headings, lists and paragraphs when `format`
    /// is `md` or `markdown`), in order, none empty.
    pub fn chunks(&self, format: &str, text: &str) -> Vec<String> {
        let config = ChunkConfig::new(self.tokens)
            .with_sizer(&self.sizer)
            .with_overlap(self.overlap)
            .unwrap_or_else(|_| ChunkConfig::new(self.tokens).with_sizer(&self.sizer));
        let chunks: Vec<String> = if matches!(format, "md" | "markdown") {
            MarkdownSplitter::new(config)
                .chunks(text)
                .map(str::to_owned)
                .collect()
        } else {
            TextSplitter::new(config)
                .chunks(text)
                .map(str::to_owned)
                .collect()
        };
        chunks
            .into_iter()
            .filter(|c| !c.trim().is_empty())
            .collect()
    }

    /// The token budget of a chunk.
    pub fn tokens(&self) -> usize {
        self.tokens
    }

    /// How its sizes are counted.
    pub fn sizer(&self) -> &Sizer {
        &self.sizer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentences(n: usize) -> String {
        (0..n)
            .map(|i| format!("Sentence number {i} says something about otters and rivers."))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn chunks_fit_the_budget_overlap_and_cover_the_text() {
        let chunker = Chunker::new(Sizer::Chars, 50, 10);
        let text = sentences(40);
        let chunks = chunker.chunks("txt", &text);
        assert!(chunks.len() > 5, "{}", chunks.len());
        for c in &chunks {
            assert!(
                Sizer::Chars.size(c) <= 50,
                "{} tokens: {c}",
                Sizer::Chars.size(c)
            );
        }
        // Every sentence is in some chunk, in order.
        for i in 0..40 {
            let s = format!("Sentence number {i} says");
            assert!(chunks.iter().any(|c| c.contains(&s)), "{s} lost");
        }
        // Overlap: some text at the end of a chunk starts the next one.
        let shared = chunks
            .windows(2)
            .filter(|w| {
                let tail: String = w[0].chars().rev().take(20).collect::<String>();
                let tail: String = tail.chars().rev().collect();
                w[1].contains(tail.trim())
            })
            .count();
        assert!(shared > 0, "no chunk overlaps the next");
    }

    #[test]
    fn a_short_text_is_one_chunk_and_markdown_cuts_at_headings() {
        let chunker = Chunker::new(Sizer::Chars, 200, 20);
        assert_eq!(chunker.chunks("txt", "one short note"), ["one short note"]);
        let md = format!(
            "# Otters\n\n{}\n\n# Herons\n\n{}",
            sentences(8),
            sentences(8).replace("otters", "herons")
        );
        let chunks = chunker.chunks("md", &md);
        assert!(chunks.len() >= 2);
        assert!(
            chunks.iter().any(|c| c.starts_with("# Herons")),
            "{chunks:#?}"
        );
    }

    #[test]
    fn overlap_is_kept_below_half_the_budget() {
        let chunker = Chunker::new(Sizer::Chars, 40, 100);
        assert!(chunker.overlap < 20);
        assert!(!chunker.chunks("txt", &sentences(10)).is_empty());
    }
}
