//! The typed `data` of actions, one module per service: what the gateway checks before it
//! publishes and what the worker parses after it reads, with one set of rules for both.

pub mod batch;
pub mod chat;
pub mod health;
pub mod media;
pub mod semantic;
pub mod stt;
pub mod tts;

use serde::de::DeserializeOwned;
use serde_json::Value;

/// The largest text of one field that is accepted (a prompt, a message, a system prompt), in
/// bytes: what the gateway's request limits let through, with room to spare.
pub const MAX_TEXT_BYTES: usize = 1 << 20;

/// Why a payload is refused: a sentence for the client naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// The typed `data` of an action type: decoded by serde, then checked by [`Payload::validate`] —
/// by the gateway before it publishes and by the worker kit (`common::worker::Actions`) after it
/// reads, so both hold the same rules. Its JSON Schema (from `ToSchema`) is in `docs/schemas/`.
pub trait Payload: DeserializeOwned + utoipa::ToSchema + Send + 'static {
    /// The rules the types do not express (ranges, lengths, one field or another).
    fn validate(&self) -> Result<(), Invalid> {
        Ok(())
    }

    /// Decodes an action's `data` and checks it.
    fn parse(data: &Value) -> Result<Self, Invalid> {
        // The path of the field at fault leads the message (`mode: unknown variant …`), as a
        // client needs it; serde_json's own errors name no field for a `Value`.
        let payload: Self = serde_path_to_error::deserialize(data).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                Invalid(inner.to_string())
            } else {
                Invalid(format!("{path}: {inner}"))
            }
        })?;
        payload.validate()?;
        Ok(payload)
    }
}

/// Every action type with a typed payload and that payload's JSON Schema, as written to
/// `docs/schemas/<action_type>.schema.json` (the envelope's schema embeds them per action type).
pub fn schemas() -> Vec<(&'static str, Value)> {
    vec![
        (chat::GENERATE, chat::generate_schema()),
        (chat::NAME, schema::<chat::NamePayload>(chat::NAME)),
        (
            health::SUMMARY,
            schema::<health::SummaryPayload>(health::SUMMARY),
        ),
        (health::TREND, schema::<health::TrendPayload>(health::TREND)),
        (
            tts::SYNTHESIZE,
            schema::<tts::SynthesizePayload>(tts::SYNTHESIZE),
        ),
        (tts::STREAM, schema::<tts::StreamPayload>(tts::STREAM)),
        (
            stt::TRANSCRIBE_FILE,
            schema::<stt::TranscribePayload>(stt::TRANSCRIBE_FILE),
        ),
        (
            stt::TRANSCRIBE_STREAM,
            schema::<stt::StreamPayload>(stt::TRANSCRIBE_STREAM),
        ),
        (
            semantic::SEARCH,
            schema::<semantic::SearchPayload>(semantic::SEARCH),
        ),
        (
            semantic::INDEX_MESSAGES,
            schema::<semantic::IndexMessagesPayload>(semantic::INDEX_MESSAGES),
        ),
        (
            semantic::DELETE,
            schema::<semantic::DeletePayload>(semantic::DELETE),
        ),
        (
            semantic::EMBED,
            schema::<semantic::EmbedPayload>(semantic::EMBED),
        ),
        (
            semantic::INGEST,
            schema::<semantic::IngestPayload>(semantic::INGEST),
        ),
        (
            semantic::LIST_DOCUMENTS,
            schema::<semantic::ListDocumentsPayload>(semantic::LIST_DOCUMENTS),
        ),
        (
            media::GENERATE_IMAGE,
            schema::<media::ImagePayload>(media::GENERATE_IMAGE),
        ),
        (
            media::GENERATE_VIDEO,
            schema::<media::VideoPayload>(media::GENERATE_VIDEO),
        ),
        (
            media::EXTEND_VIDEO,
            schema::<media::ExtendPayload>(media::EXTEND_VIDEO),
        ),
        (batch::RUN, schema::<batch::RunPayload>(batch::RUN)),
    ]
}

/// The standalone JSON Schema (draft 2020-12) of `T`, the `data` of `action_type`: the OpenAPI
/// 3.1 schema that `utoipa` derives, with the types it refers to under `$defs`.
pub fn schema<T: utoipa::ToSchema>(action_type: &str) -> Value {
    let mut nested = Vec::new();
    T::schemas(&mut nested);
    let mut root = serde_json::to_value(T::schema()).unwrap_or(Value::Null);
    let mut defs = serde_json::Map::new();
    for (name, schema) in nested {
        defs.insert(name, serde_json::to_value(schema).unwrap_or(Value::Null));
    }
    if let Value::Object(map) = &mut root {
        let mut head = serde_json::Map::new();
        head.insert(
            "$schema".into(),
            "https://json-schema.org/draft/2020-12/schema".into(),
        );
        head.insert(
            "$id".into(),
            format!("urn:aibackend:schema:data:{action_type}").into(),
        );
        head.insert("title".into(), format!("data of {action_type}").into());
        head.append(map);
        if !defs.is_empty() {
            head.insert("$defs".into(), Value::Object(defs));
        }
        *map = head;
    }
    local_refs(&mut root);
    root
}

/// OpenAPI's `#/components/schemas/X` references become `#/$defs/X`.
fn local_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(s) if key == "$ref" => {
                        if let Some(name) = s.strip_prefix("#/components/schemas/") {
                            *s = format!("#/$defs/{name}");
                        }
                    }
                    _ => local_refs(v),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(local_refs),
        _ => {}
    }
}

/// Refuses text that cannot be stored: PostgreSQL text holds no NUL character, so a turn
/// containing one would be answered and then lost.
pub fn storable(text: &str, field: &str) -> Result<(), Invalid> {
    if text.contains('\0') {
        return Err(Invalid(format!("{field} must not contain a NUL character")));
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(Invalid(format!(
            "{field} is longer than {MAX_TEXT_BYTES} bytes"
        )));
    }
    Ok(())
}

/// [`storable`] for every string inside a JSON value (parts of a prompt, message contents).
pub fn storable_json(value: &serde_json::Value, field: &str) -> Result<(), Invalid> {
    match value {
        serde_json::Value::String(s) => storable(s, field),
        serde_json::Value::Array(items) => items.iter().try_for_each(|v| storable_json(v, field)),
        serde_json::Value::Object(map) => map.values().try_for_each(|v| storable_json(v, field)),
        _ => Ok(()),
    }
}
