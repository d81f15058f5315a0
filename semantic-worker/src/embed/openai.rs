//! The embedder for OpenAI's `POST /v1/embeddings` and the servers that speak it (Ollama, vLLM,
//! LiteLLM, ...): one base URL, an optional key, a model.
//!
//! It asks for `encoding_format: "float"` (base64 answers are read too, for servers that send
//! them anyway), sends `dimensions` only to the models that take it (`text-embedding-3-*`), cuts
//! a call into requests of at most [`MAX_INPUTS`] texts, and reorders the answer by `index`.
//! Vectors are normalised here whatever the server did (OpenAI's are unit length already; not
//! every server's are). Errors are the provider errors every worker reports
//! ([`common::provider`]): the key never appears in them.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::provider::{self, ProviderError};
use common::settings::Secret;
use serde::Deserialize;
use serde_json::json;

use super::{EmbedError, Embedder, Embeddings, check_texts, normalize};

/// Texts in one request at most (the API's limit on `input`).
pub const MAX_INPUTS: usize = 2048;

/// Bytes of text in one request at most. The API takes 300,000 tokens per request; text of 4
/// bytes a token or more (English, most European text) stays under it at this size.
const MAX_REQUEST_BYTES: usize = 1_000_000;

/// OpenAI's base URL.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

/// How an [`OpenAiEmbedder`] reaches its server.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// The API's base URL, `https://api.openai.com/v1` or e.g. `http://localhost:11434/v1`
    /// (Ollama); requests go to `{base_url}/embeddings`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer`; local servers often need none.
    pub api_key: Option<Secret>,
    /// The model, e.g. `text-embedding-3-small`, `nomic-embed-text`.
    pub model: String,
    /// Shorter vectors than the model's own (`text-embedding-3-*` only: the others cannot
    /// shorten theirs).
    pub dimensions: Option<usize>,
    /// How long one request may take, connection to last byte.
    pub timeout: Duration,
    /// The provider's name in events (`openai`, `ollama`, ...).
    pub provider: String,
}

impl OpenAiConfig {
    /// OpenAI itself with `model` and the default timeout (60 s).
    pub fn openai(api_key: Secret, model: impl Into<String>) -> Self {
        Self {
            base_url: OPENAI_BASE_URL.into(),
            api_key: Some(api_key),
            model: model.into(),
            dimensions: None,
            timeout: Duration::from_secs(60),
            provider: "openai".into(),
        }
    }
}

/// An OpenAI-compatible embeddings endpoint.
#[derive(Debug, Clone)]
pub struct OpenAiEmbedder {
    client: reqwest::Client,
    url: String,
    config: OpenAiConfig,
    /// The size of every vector.
    dimensions: usize,
}

/// The size of the vectors of OpenAI's models, and whether it can be asked to be smaller.
fn native_size(model: &str) -> Option<(usize, bool)> {
    match model {
        "text-embedding-3-small" => Some((1536, true)),
        "text-embedding-3-large" => Some((3072, true)),
        "text-embedding-ada-002" => Some((1536, false)),
        _ => None,
    }
}

impl OpenAiEmbedder {
    /// Checks `config` and learns the vectors' size: from the model's name for OpenAI's
    /// models (no request), else by embedding one short text (the server's errors are
    /// returned). `dimensions` on a model that cannot shorten its vectors is
    /// [`EmbedError::Invalid`].
    pub async fn connect(config: OpenAiConfig) -> Result<Self, EmbedError> {
        let dimensions = match (native_size(&config.model), config.dimensions) {
            (Some((_, true)), Some(0)) => {
                return Err(EmbedError::Invalid("dimensions must be at least 1".into()));
            }
            (Some((native, true)), Some(asked)) if asked > native => {
                return Err(EmbedError::Invalid(format!(
                    "{} gives at most {native} dimensions, not {asked}",
                    config.model
                )));
            }
            (Some((_, true)), Some(asked)) => asked,
            (_, Some(_)) => {
                return Err(EmbedError::Invalid(format!(
                    "dimensions is for text-embedding-3-* models only; {} has a fixed size",
                    config.model
                )));
            }
            (Some((native, _)), None) => native,
            // Learned below.
            (None, None) => 0,
        };
        let client = provider::client().map_err(|e| EmbedError::Failed(e.to_string()))?;
        let url = format!("{}/embeddings", config.base_url.trim_end_matches('/'));
        let mut embedder = Self {
            client,
            url,
            config,
            dimensions,
        };
        if embedder.dimensions == 0 {
            let probe = embedder.request(&["dimensions".to_string()]).await?;
            embedder.dimensions = probe.vectors.first().map_or(0, Vec::len);
            if embedder.dimensions == 0 {
                return Err(ProviderError::Protocol("an empty embedding".into()).into());
            }
        }
        Ok(embedder)
    }

    /// One request of at most [`MAX_INPUTS`] texts.
    async fn request(&self, texts: &[String]) -> Result<Embeddings, EmbedError> {
        let mut body = json!({
            "model": self.config.model,
            "input": texts,
            "encoding_format": "float",
        });
        if let Some(dimensions) = self.config.dimensions {
            body["dimensions"] = dimensions.into();
        }
        let mut builder = self
            .client
            .post(&self.url)
            .timeout(self.config.timeout)
            .json(&body);
        if let Some(key) = &self.config.api_key {
            builder = builder.bearer_auth(key.expose());
        }
        let response = match provider::send(builder, self.config.api_key.as_ref()).await {
            Ok(response) => response,
            // A 400 (a text over the model's token limit, ...) is about the texts sent: the
            // caller's to fix, with the provider's explanation (which never holds the key).
            Err(ProviderError::Refused { message, .. }) => {
                return Err(EmbedError::Invalid(message));
            }
            Err(e) => return Err(e.into()),
        };
        let body = response.bytes().await.map_err(|e| {
            ProviderError::Connection(if e.is_timeout() {
                "timed out".into()
            } else {
                "the response broke off".into()
            })
        })?;
        let answer: Answer = serde_json::from_slice(&body)
            .map_err(|e| ProviderError::Protocol(format!("not an embeddings response: {e}")))?;
        answer.into_embeddings(texts.len(), self.dimensions)
    }
}

/// The response body: `{"data": [{"index", "embedding"}], "usage": {"prompt_tokens"}}`.
#[derive(Deserialize)]
struct Answer {
    data: Vec<Datum>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Datum {
    index: usize,
    embedding: Vector,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Vector {
    Floats(Vec<f32>),
    /// Little-endian float32 bytes, base64: what the API sends for `encoding_format: "base64"`.
    Base64(String),
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
}

impl Answer {
    /// The vectors in input order, normalised, each of `dimensions` (any size when 0).
    fn into_embeddings(self, inputs: usize, dimensions: usize) -> Result<Embeddings, EmbedError> {
        let protocol = |m: String| EmbedError::from(ProviderError::Protocol(m));
        if self.data.len() != inputs {
            return Err(protocol(format!(
                "{} embeddings for {inputs} inputs",
                self.data.len()
            )));
        }
        let mut vectors: Vec<Option<Vec<f32>>> = vec![None; inputs];
        for datum in self.data {
            let mut vector = match datum.embedding {
                Vector::Floats(v) => v,
                Vector::Base64(s) => {
                    let bytes = STANDARD
                        .decode(s)
                        .map_err(|e| protocol(format!("an embedding is not base64: {e}")))?;
                    if bytes.len() % 4 != 0 {
                        return Err(protocol("a base64 embedding is not float32s".into()));
                    }
                    bytes
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect()
                }
            };
            if vector.is_empty() || (dimensions != 0 && vector.len() != dimensions) {
                return Err(protocol(format!(
                    "an embedding of {} dimensions, not {dimensions}",
                    vector.len()
                )));
            }
            normalize(&mut vector);
            let Some(slot) = vectors.get_mut(datum.index) else {
                return Err(protocol(format!("index {} out of range", datum.index)));
            };
            if slot.replace(vector).is_some() {
                return Err(protocol(format!("index {} twice", datum.index)));
            }
        }
        Ok(Embeddings {
            // Every slot is filled: as many data as inputs, no index twice, none out of range.
            vectors: vectors.into_iter().flatten().collect(),
            tokens: self.usage.map_or(0, |u| u.prompt_tokens),
        })
    }
}

/// Cuts `texts` into requests: at most [`MAX_INPUTS`] texts and about [`MAX_REQUEST_BYTES`].
fn requests(texts: &[String]) -> Vec<&[String]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, text) in texts.iter().enumerate() {
        if i > start && (i - start == MAX_INPUTS || bytes + text.len() > MAX_REQUEST_BYTES) {
            out.push(&texts[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += text.len();
    }
    if start < texts.len() {
        out.push(&texts[start..]);
    }
    out
}

#[async_trait]
impl Embedder for OpenAiEmbedder {
    fn provider(&self) -> &str {
        &self.config.provider
    }

    fn model(&self) -> &str {
        &self.config.model
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    async fn embed(&self, texts: &[String]) -> Result<Embeddings, EmbedError> {
        check_texts(texts)?;
        let mut all = Embeddings {
            vectors: Vec::with_capacity(texts.len()),
            tokens: 0,
        };
        for chunk in requests(texts) {
            let part = self.request(chunk).await?;
            all.vectors.extend(part.vectors);
            all.tokens += part.tokens;
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_hold_at_most_2048_texts() {
        let texts = vec!["a".to_string(); 5000];
        let sizes: Vec<usize> = requests(&texts).iter().map(|r| r.len()).collect();
        assert_eq!(sizes, vec![2048, 2048, 904]);
        let long = vec!["x".repeat(400_000); 3];
        let sizes: Vec<usize> = requests(&long).iter().map(|r| r.len()).collect();
        assert_eq!(sizes, vec![2, 1]);
    }

    #[test]
    fn answers_are_put_in_input_order_and_normalised() {
        let answer: Answer = serde_json::from_value(json!({
            "data": [
                {"index": 1, "embedding": [0.0, 2.0]},
                {"index": 0, "embedding": STANDARD.encode([3f32.to_le_bytes(), 4f32.to_le_bytes()].concat())},
            ],
            "usage": {"prompt_tokens": 7, "total_tokens": 7}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let embeddings = answer
            .into_embeddings(2, 2)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(embeddings.vectors, vec![vec![0.6, 0.8], vec![0.0, 1.0]]);
        assert_eq!(embeddings.tokens, 7);
    }

    #[test]
    fn a_missing_or_repeated_index_is_a_protocol_error() {
        let answer: Answer = serde_json::from_value(json!({
            "data": [{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [1.0]}]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let Err(EmbedError::Provider(ProviderError::Protocol(why))) = answer.into_embeddings(2, 1)
        else {
            panic!("accepted a repeated index");
        };
        assert!(why.contains("index 0 twice"), "{why}");
    }
}
