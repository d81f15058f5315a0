//! OpenAI embeddings, `POST /v1/embeddings`: a vector per input, as JSON floats or (the official
//! SDKs' default) base64 little-endian float32, with `index` and `usage`.
//!
//! The vectors are a hashed bag of words: each lower-cased word of the text adds ±1 at
//! [`SLOTS_PER_WORD`] positions chosen by its hash, and the sum is L2 normalised. So they are
//! deterministic, unit length, and texts that share words are closer than texts that do not —
//! enough for a search test to rank results without a model.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde_json::{Value, json};

use super::{
    Invalid, bearer_key, failure_response, invalid_request, invalid_value, missing, no_api_key,
};
use crate::engine::{self, Failure, Turn};
use crate::record::{Incoming, WireFormat};
use crate::server::Shared;

/// Inputs in one request at most.
const MAX_INPUTS: usize = 2048;
/// Tokens (here: words) of one input at most.
const MAX_INPUT_TOKENS: u64 = 8192;
/// Positions each word adds to.
const SLOTS_PER_WORD: usize = 4;

/// The embedding models the simulator serves: name, vector size, whether `dimensions` may
/// shorten it.
const MODELS: [(&str, usize, bool); 3] = [
    ("text-embedding-3-small", 1536, true),
    ("text-embedding-3-large", 3072, true),
    ("text-embedding-ada-002", 1536, false),
];

/// `POST /v1/embeddings`.
pub(crate) async fn embeddings(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // The real API checks the key before it reads the body.
    let Some(authorization) = bearer_key(&headers) else {
        return no_api_key();
    };
    let body: Value = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(err) => {
            return invalid_request(
                format!("We could not parse the JSON body of your request: {err}"),
                None,
            );
        }
    };
    let request = match EmbeddingRequest::parse(&body) {
        Ok(request) => request,
        Err(invalid) => return invalid.into_response(),
    };
    let mut incoming = Incoming::new(
        WireFormat::OpenAiEmbeddings,
        &uri,
        Some(authorization),
        body,
    );
    for input in &request.inputs {
        if let Input::Text(text) = input {
            incoming = incoming.with_text(text);
        }
    }
    let (behaviour, guard) = shared.begin(incoming);
    tracing::debug!(
        ?behaviour,
        inputs = request.inputs.len(),
        "openai embeddings"
    );
    engine::respond(
        EmbeddingTurn { request },
        &behaviour,
        engine::Timing::from(shared.config()),
        guard,
        shared.stop_token(),
    )
    .await
}

/// One input: a text, or the token ids the API also takes.
enum Input {
    Text(String),
    Tokens(Vec<i64>),
}

impl Input {
    /// The simulator's tokens: whitespace-separated words, or the ids given.
    fn tokens(&self) -> u64 {
        match self {
            Input::Text(text) => crate::content::word_count(text),
            Input::Tokens(ids) => ids.len() as u64,
        }
    }

    /// The words the vector is made of.
    fn words(&self) -> Vec<String> {
        match self {
            Input::Text(text) => {
                let words: Vec<String> = text
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|w| !w.is_empty())
                    .map(str::to_lowercase)
                    .collect();
                // Punctuation alone is still a text: one "word", itself.
                if words.is_empty() {
                    vec![text.clone()]
                } else {
                    words
                }
            }
            Input::Tokens(ids) => ids.iter().map(|id| format!("#{id}")).collect(),
        }
    }
}

/// An embeddings request the simulator accepted.
struct EmbeddingRequest {
    model: String,
    inputs: Vec<Input>,
    base64: bool,
    dimensions: usize,
}

/// The API's message for an `input` it cannot take.
fn invalid_input() -> Invalid {
    Invalid::new(
        "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.".to_owned(),
        None,
    )
}

impl EmbeddingRequest {
    /// Checks the fields as the real API does, with its messages and codes.
    fn parse(body: &Value) -> Result<Self, Invalid> {
        let Some(object) = body.as_object() else {
            return Err(Invalid::new(
                "The request body must be a JSON object.".to_owned(),
                None,
            ));
        };
        let model = match object.get("model").and_then(Value::as_str) {
            Some(model) if !model.is_empty() => model.to_owned(),
            _ => {
                return Err(Invalid::new(
                    "you must provide a model parameter".to_owned(),
                    Some("model"),
                ));
            }
        };
        let inputs = match object.get("input") {
            None | Some(Value::Null) => return Err(missing("input")),
            Some(input) => parse_inputs(input)?,
        };
        let base64 = match object.get("encoding_format") {
            None | Some(Value::Null) => false,
            Some(Value::String(f)) if f == "float" => false,
            Some(Value::String(f)) if f == "base64" => true,
            Some(other) => {
                let shown = other
                    .as_str()
                    .map_or_else(|| other.to_string(), str::to_owned);
                return Err(invalid_value(
                    "encoding_format",
                    &shown,
                    &["float", "base64"],
                ));
            }
        };
        let Some(&(_, size, shortens)) = MODELS.iter().find(|(name, ..)| *name == model) else {
            return Err(Invalid::new(
                format!("The model `{model}` does not exist or you do not have access to it."),
                None,
            )
            .with_code("model_not_found")
            .with_status(StatusCode::NOT_FOUND));
        };
        let dimensions = match object.get("dimensions") {
            None | Some(Value::Null) => size,
            Some(_) if !shortens => {
                return Err(Invalid::new(
                    "This model does not support specifying dimensions.".to_owned(),
                    Some("dimensions"),
                ));
            }
            Some(value) => match value.as_i64() {
                Some(n) if n < 1 => {
                    return Err(Invalid::new(
                        format!(
                            "Invalid 'dimensions': integer below minimum value. Expected a value >= 1, but got {n} instead."
                        ),
                        Some("dimensions"),
                    )
                    .with_code("integer_below_min_value"));
                }
                Some(n) if n as u64 > size as u64 => {
                    return Err(Invalid::new(
                        format!(
                            "This model's maximum number of dimensions is {size}, however you requested {n} dimensions."
                        ),
                        Some("dimensions"),
                    ));
                }
                Some(n) => n as usize,
                None => {
                    return Err(Invalid::new(
                        format!("Invalid type for 'dimensions': expected an integer, but got {value} instead."),
                        Some("dimensions"),
                    )
                    .with_code("invalid_type"));
                }
            },
        };
        if let Some(tokens) = inputs
            .iter()
            .map(Input::tokens)
            .find(|t| *t > MAX_INPUT_TOKENS)
        {
            return Err(Invalid::new(
                format!(
                    "This model's maximum context length is {MAX_INPUT_TOKENS} tokens, however you requested {tokens} tokens ({tokens} in your prompt; 0 for the completion). Please reduce your prompt; or completion length."
                ),
                None,
            ));
        }
        Ok(Self {
            model,
            inputs,
            base64,
            dimensions,
        })
    }
}

/// `input`: a string, an array of strings, an array of token ids, or an array of those.
fn parse_inputs(input: &Value) -> Result<Vec<Input>, Invalid> {
    let text = |s: &str| {
        if s.is_empty() {
            Err(invalid_input())
        } else {
            Ok(Input::Text(s.to_owned()))
        }
    };
    let tokens = |items: &[Value]| {
        items
            .iter()
            .map(Value::as_i64)
            .collect::<Option<Vec<i64>>>()
            .filter(|ids| !ids.is_empty())
            .map(Input::Tokens)
            .ok_or_else(invalid_input)
    };
    match input {
        Value::String(s) => Ok(vec![text(s)?]),
        Value::Array(items) if items.is_empty() => Err(invalid_input()),
        Value::Array(items) if items.len() > MAX_INPUTS => Err(Invalid::new(
            format!("'input' : maximum length {MAX_INPUTS}"),
            Some("input"),
        )),
        Value::Array(items) if items.iter().all(Value::is_number) => Ok(vec![tokens(items)?]),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => text(s),
                Value::Array(ids) => tokens(ids),
                _ => Err(invalid_input()),
            })
            .collect(),
        _ => Err(invalid_input()),
    }
}

/// FNV-1a: a hash that is the same on every machine and every run.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The next of a word's pseudo-random numbers (splitmix64).
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The simulator's embedding of `words`: a unit vector of `dimensions`.
fn vector(words: &[String], dimensions: usize) -> Vec<f32> {
    let mut v = vec![0f32; dimensions];
    for word in words {
        let mut state = fnv1a(word.as_bytes());
        for _ in 0..SLOTS_PER_WORD {
            let r = next(&mut state);
            let slot = (r % dimensions as u64) as usize;
            v[slot] += if r >> 63 == 0 { 1.0 } else { -1.0 };
        }
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    } else {
        // Every slot cancelled out (a word and its opposite): any unit vector will do.
        v[0] = 1.0;
    }
    v
}

/// The reply to one embeddings request: never streamed.
struct EmbeddingTurn {
    request: EmbeddingRequest,
}

impl Turn for EmbeddingTurn {
    fn streaming(&self) -> bool {
        false
    }

    fn units(&self) -> usize {
        1
    }

    fn opening(&mut self) -> Vec<Bytes> {
        Vec::new()
    }

    fn unit(&mut self, _: usize) -> Bytes {
        Bytes::new()
    }

    fn closing(&mut self) -> Vec<Bytes> {
        Vec::new()
    }

    fn malformed(&mut self) -> Vec<Bytes> {
        Vec::new()
    }

    fn error_event(&mut self) -> Vec<Bytes> {
        Vec::new()
    }

    fn complete(&self) -> Response {
        let request = &self.request;
        let data: Vec<Value> = request
            .inputs
            .iter()
            .enumerate()
            .map(|(index, input)| {
                let v = vector(&input.words(), request.dimensions);
                let embedding = if request.base64 {
                    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                    Value::String(BASE64.encode(bytes))
                } else {
                    json!(v)
                };
                json!({ "object": "embedding", "index": index, "embedding": embedding })
            })
            .collect();
        let tokens: u64 = request.inputs.iter().map(Input::tokens).sum();
        axum::Json(json!({
            "object": "list",
            "data": data,
            "model": request.model,
            "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
        }))
        .into_response()
    }

    fn malformed_complete(&self) -> Response {
        let mut response = "{\"object\":\"list\",\"data\":[{\"embedding\":".into_response();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }

    fn failure(&self, failure: Failure) -> Response {
        failure_response(failure, &self.request.model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        Input::Text(text.to_owned()).words()
    }

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn vectors_are_deterministic_unit_and_closer_when_words_are_shared() {
        let a = vector(&words("The cat sat on the mat."), 1536);
        assert_eq!(a, vector(&words("the CAT sat, on the mat"), 1536));
        assert!((cosine(&a, &a) - 1.0).abs() < 1e-5);
        // Three words of five shared ("the" twice, "a" twice): about 12/32.
        let near = vector(&words("A cat sat on a rug"), 1536);
        let far = vector(&words("Quarterly revenue grew by nine percent"), 1536);
        assert!(cosine(&a, &near) > 0.3, "{}", cosine(&a, &near));
        assert!(cosine(&a, &far).abs() < 0.1, "{}", cosine(&a, &far));
        assert_eq!(vector(&words("!!!"), 8).len(), 8);
    }

    #[test]
    fn inputs_take_every_shape_the_api_takes() {
        let parse = |v: Value| parse_inputs(&v).map(|i| i.len()).map_err(|e| e.message);
        assert_eq!(parse(json!("one")), Ok(1));
        assert_eq!(parse(json!(["a", "b"])), Ok(2));
        assert_eq!(parse(json!([1, 2, 3])), Ok(1));
        assert_eq!(parse(json!([[1, 2], [3]])), Ok(2));
        assert!(parse(json!("")).is_err());
        assert!(parse(json!([])).is_err());
        assert!(parse(json!(["a", ""])).is_err());
        assert!(parse(json!(vec!["a"; 2049])).is_err());
    }
}
