//! The JSON Schemas of the typed action payloads in `docs/` are the ones the code derives: this
//! test fails when a payload type changed and the documents did not. `UPDATE_SCHEMAS=1 cargo test
//! -p common --test schemas` rewrites them.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

/// The value with every object's keys in order: the same text whether or not a crate elsewhere
/// in the build turned on serde_json's `preserve_order` (qdrant-edge does, in a workspace build).
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(&sorted(value)).unwrap_or_default();
    text.push('\n');
    text
}

/// Writes `text` to `path` when asked to, else says whether the file holds it.
fn check(path: &Path, text: &str, stale: &mut Vec<String>) {
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    } else if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        stale.push(path.display().to_string());
    }
}

/// The envelope's schema embeds every payload schema under `$defs`, chosen by `action_type`.
fn envelope_with(mut envelope: Value, schemas: &[(&str, Value)]) -> Value {
    let mut defs = Map::new();
    let mut cases = Vec::new();
    for (action_type, schema) in schemas {
        let mut schema = schema.clone();
        if let Value::Object(map) = &mut schema {
            map.remove("$schema");
            // An embedded $id would make the references inside resolve against it.
            map.remove("$id");
            // Nested definitions move up, so their references resolve in the envelope.
            if let Some(Value::Object(nested)) = map.remove("$defs") {
                defs.extend(nested);
            }
        }
        defs.insert((*action_type).to_owned(), schema);
        cases.push(json!({
            "if": {"properties": {"action_type": {"const": action_type}}, "required": ["action_type"]},
            "then": {"properties": {"data": {"$ref": format!("#/$defs/{action_type}")}}},
        }));
    }
    envelope["$defs"] = Value::Object(defs);
    envelope["allOf"] = Value::Array(cases);
    envelope
}

#[test]
fn the_documented_schemas_are_the_derived_ones() {
    let schemas = common::payloads::schemas();
    let mut stale = Vec::new();
    for (action_type, schema) in &schemas {
        let path = docs()
            .join("schemas")
            .join(format!("{action_type}.schema.json"));
        check(&path, &pretty(schema), &mut stale);
    }
    let path = docs().join("envelope.schema.json");
    let envelope: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    check(
        &path,
        &pretty(&envelope_with(envelope, &schemas)),
        &mut stale,
    );
    assert!(
        stale.is_empty(),
        "out of date (rerun with UPDATE_SCHEMAS=1): {stale:?}"
    );
}

#[test]
fn every_payload_schema_names_its_fields() {
    for (action_type, schema) in common::payloads::schemas() {
        // An object, or (with flattened fields) all of several objects.
        let parts = match schema["allOf"].as_array() {
            Some(parts) => parts.clone(),
            None => vec![schema.clone()],
        };
        let named = parts.iter().any(|p| {
            p["properties"].as_object().is_some_and(|p| !p.is_empty()) || p["$ref"].is_string()
        });
        assert!(named, "{action_type} has no properties");
        let objects = parts
            .iter()
            .all(|p| p["type"] == "object" || p["$ref"].is_string());
        assert!(objects, "{action_type}");
        assert_eq!(schema["title"], format!("data of {action_type}"));
    }
}
