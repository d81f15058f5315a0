//! Embeddings: texts to dense vectors, behind one trait, from a local model ([`local`]: offline
//! all-MiniLM-L6-v2, the default) or an OpenAI-compatible server ([`openai`]: OpenAI, Ollama,
//! vLLM, ...).

use std::time::Duration;

use async_trait::async_trait;
use common::provider::ProviderError;

pub mod local;
pub mod openai;

/// Why texts could not be embedded.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The input breaks the embedder's rules (too many texts, an empty text, `dimensions` it
    /// cannot give): the caller's mistake.
    #[error("{0}")]
    Invalid(String),
    /// The embedder could not do it (the local model failed, or is not there).
    #[error("{0}")]
    Failed(String),
    /// The provider answered with an error or could not be reached. Kept whole (rather than
    /// flattened into `Failed`) so that the worker reports it as the other workers report
    /// theirs: its code, whether a retry may help, the wait a 429 asked for. Its text never
    /// holds the API key.
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

impl EmbedError {
    /// A stable code for `error` events: `invalid_input`, `embedding_failed`, or the provider
    /// error's (`rate_limited`, `upstream_error`, `upstream_misconfigured`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid_input",
            Self::Failed(_) => "embedding_failed",
            Self::Provider(e) => e.code(),
        }
    }

    /// Whether the same texts may be embedded if tried again (a 429, a 5xx, a timeout).
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Provider(e) if e.retryable())
    }

    /// The wait a rate-limited provider asked for.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Provider(e) => e.retry_after(),
            _ => None,
        }
    }
}

/// Turns texts into vectors of one fixed size, each L2-normalised.
#[async_trait]
pub trait Embedder: Send + Sync + std::fmt::Debug {
    /// The provider's name (`local`, `openai`, ...).
    fn provider(&self) -> &str;
    /// The model's name as clients see it (`all-minilm-l6-v2`, `text-embedding-3-small`).
    fn model(&self) -> &str;
    /// The size of every vector it returns.
    fn dimensions(&self) -> usize;
    /// One vector per text, in order. `texts` is never empty; an empty (or blank) text is
    /// [`EmbedError::Invalid`] for every embedder, so that a text refused by one is refused by
    /// all.
    async fn embed(&self, texts: &[String]) -> Result<Embeddings, EmbedError>;
}

/// What [`Embedder::embed`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// One vector per input text, in order.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens the input counted (the model's own tokenizer), for `usage`.
    pub tokens: u64,
}

/// The checks every embedder makes before any work: texts given, none blank.
fn check_texts(texts: &[String]) -> Result<(), EmbedError> {
    if texts.is_empty() {
        return Err(EmbedError::Invalid("no text to embed".into()));
    }
    if let Some(i) = texts.iter().position(|t| t.trim().is_empty()) {
        return Err(EmbedError::Invalid(format!("text {i} is empty")));
    }
    Ok(())
}

/// Scales `v` to unit length (a zero vector stays zero: there is no direction to keep).
fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// The cosine of two vectors of one length (their dot product when both are unit length, as
/// every [`Embedder`] returns them).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot = a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let norms =
        a.iter().map(|x| x * x).sum::<f32>().sqrt() * b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norms > 0.0 { dot / norms } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_texts_are_the_callers_mistake() {
        assert!(matches!(check_texts(&[]), Err(EmbedError::Invalid(_))));
        let texts = ["a".to_string(), " \n".to_string()];
        let Err(EmbedError::Invalid(why)) = check_texts(&texts) else {
            panic!("a blank text passed");
        };
        assert_eq!(why, "text 1 is empty");
    }

    #[test]
    fn normalize_gives_unit_length_and_keeps_zero() {
        let mut v = vec![3.0, 4.0];
        normalize(&mut v);
        assert_eq!(v, vec![0.6, 0.8]);
        let mut zero = vec![0.0; 3];
        normalize(&mut zero);
        assert_eq!(zero, vec![0.0; 3]);
        assert!((cosine(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-6);
    }
}
