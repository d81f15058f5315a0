//! The typed `data` of actions, one module per service: what the gateway checks before it
//! publishes and what the worker parses after it reads, with one set of rules for both.

pub mod chat;

/// The largest text of one field that is accepted (a prompt, a message, a system prompt), in
/// bytes: what the gateway's request limits let through, with room to spare.
pub const MAX_TEXT_BYTES: usize = 1 << 20;

/// Why a payload is refused: a sentence for the client naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

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
