//! `semantic.embeddings.create`: texts to vectors for `POST /v1/embeddings`, by the index's embedder or
//! another this worker has, each vector as base64 of little-endian float32 (a quarter of the
//! JSON numbers' size on the response stream; the gateway gives floats when asked).

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use common::events::TextCompleted;
use common::payloads::semantic::EmbedPayload;
use common::worker::{Action, HandlerError, Task};

use super::index_error;
use crate::embed::Embedder;

/// Serves `semantic.embeddings.create` with the embedders of this worker (the first is the default).
#[derive(Debug, Clone)]
pub struct Embed(pub Vec<Arc<dyn Embedder>>);

impl Embed {
    fn pick(&self, model: Option<&str>) -> Result<&Arc<dyn Embedder>, HandlerError> {
        let found = match model {
            None | Some("default") => self.0.first(),
            Some(name) => self
                .0
                .iter()
                .find(|e| e.model() == name || e.provider() == name),
        };
        found.ok_or_else(|| {
            let known: Vec<&str> = self.0.iter().map(|e| e.model()).collect();
            HandlerError::rejected(
                "unknown_model",
                format!(
                    "no embedding model {:?} here (known: {})",
                    model.unwrap_or_default(),
                    known.join(", ")
                ),
            )
        })
    }
}

/// Whether a model's vectors may be shortened: OpenAI's `text-embedding-3-*` are trained so that
/// a prefix, normalised again, is a good embedding (what their `dimensions` does).
fn shortenable(model: &str) -> bool {
    model.starts_with("text-embedding-3")
}

/// The first `dims` values of `v`, of unit length again.
fn shorten(mut v: Vec<f32>, dims: usize) -> Vec<f32> {
    v.truncate(dims);
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// Little-endian float32 bytes, base64: what OpenAI answers for `encoding_format: base64`.
pub fn to_base64(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    STANDARD.encode(bytes)
}

#[async_trait]
impl Action<EmbedPayload> for Embed {
    async fn run(&self, task: Task, payload: EmbedPayload) -> Result<(), HandlerError> {
        let embedder = self.pick(payload.model.as_deref())?;
        let native = embedder.dimensions();
        let dims = match payload.dimensions.map(|d| d as usize) {
            None => native,
            Some(d) if d == native => native,
            Some(d) if d < native && shortenable(embedder.model()) => d,
            Some(d) => {
                return Err(HandlerError::rejected(
                    "unsupported_option",
                    format!(
                        "{} gives {native} dimensions and cannot give {d}",
                        embedder.model()
                    ),
                ));
            }
        };
        let mut vectors = Vec::with_capacity(payload.input.len());
        let mut tokens = 0;
        for batch in payload.input.chunks(256) {
            if task.cancel.is_cancelled() {
                return Ok(());
            }
            let out = embedder
                .embed(batch)
                .await
                .map_err(|e| index_error(e.into()))?;
            tokens += out.tokens;
            vectors.extend(out.vectors);
        }
        let embeddings: Vec<String> = vectors
            .into_iter()
            .map(|v| to_base64(&if dims < native { shorten(v, dims) } else { v }))
            .collect();
        let mut done = TextCompleted::new(
            "",
            json!({"prompt_tokens": tokens, "total_tokens": tokens}),
            "stop",
        );
        done.data = Some(json!({
            "embeddings": embeddings,
            "model": embedder.model(),
            "provider": embedder.provider(),
            "dimensions": dims,
        }));
        task.events.text_completed(&done).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_little_endian_float32_and_shortened_to_unit_length() {
        let b = to_base64(&[1.0, -2.5]);
        let bytes = STANDARD.decode(b).unwrap();
        assert_eq!(
            bytes,
            [1.0f32.to_le_bytes(), (-2.5f32).to_le_bytes()].concat()
        );
        let v = shorten(vec![3.0, 4.0, 12.0], 2);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        assert!(shortenable("text-embedding-3-small") && !shortenable("all-minilm-l6-v2"));
    }
}
