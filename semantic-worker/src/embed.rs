//! Embeddings: texts to dense vectors, behind one trait, from a local model or an OpenAI-compatible
//! server.

use async_trait::async_trait;

/// Why texts could not be embedded.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The input breaks the embedder's rules (too many texts, an empty text, `dimensions` it
    /// cannot give): the caller's mistake.
    #[error("{0}")]
    Invalid(String),
    /// The embedder could not do it (a provider's error, the local model failed).
    #[error("{0}")]
    Failed(String),
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
    /// One vector per text, in order. `texts` is never empty.
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
