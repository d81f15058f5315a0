//! JSON text of the simulator's own wire types.

use serde::Serialize;

/// `value` as JSON. The wire types always serialize; should one fail, an empty object keeps the
/// stream parseable.
pub(crate) fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned())
}
