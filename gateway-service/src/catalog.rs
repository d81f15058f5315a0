//! What callers see of the model registry: OpenAI's model objects for `/v1/models`, and the REST
//! view of `/api/v1/models` (names and aliases for everyone; provider, upstream id, capabilities and
//! fallbacks for admins only, since they describe the deployment).

use common::models::{Model, ModelRegistry, UnknownModel};
use serde_json::{Value, json};

/// One model as OpenAI's `model` object.
pub fn openai_model(m: Model<'_>) -> Value {
    json!({"id": m.name, "object": "model", "created": 0, "owned_by": m.provider_name})
}

/// Every model as OpenAI's list object.
pub fn openai_list(registry: &ModelRegistry) -> Value {
    let data: Vec<Value> = registry.models().map(openai_model).collect();
    json!({"object": "list", "data": data})
}

/// One model by name or alias, as OpenAI's `model` object.
pub fn openai_retrieve(registry: &ModelRegistry, id: &str) -> Result<Value, UnknownModel> {
    registry.resolve(Some(id)).map(openai_model)
}

fn model_view(m: Model<'_>, admin: bool) -> Value {
    let mut view = json!({"name": m.name, "aliases": m.spec.aliases});
    if admin {
        let s = m.spec;
        view["provider"] = json!(m.provider_name);
        view["upstream"] = json!(m.upstream());
        view["capabilities"] = json!({
            "streaming": s.streaming,
            "tools": s.tools,
            "reasoning": s.reasoning,
            "vision": s.vision,
            "temperature": s.temperature,
            "max_output_tokens": s.max_output_tokens,
            "batch": s.batch,
        });
        view["fallbacks"] = json!(s.fallback);
    }
    view
}

/// The registry as `GET /api/v1/models` shows it to a caller.
pub fn registry_view(registry: &ModelRegistry, admin: bool) -> Value {
    let models: Vec<Value> = registry.models().map(|m| model_view(m, admin)).collect();
    json!({"default": registry.default_model(), "models": models})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_see_names_and_admins_see_the_deployment() {
        let r = ModelRegistry::load(None).unwrap();
        let user = registry_view(&r, false);
        let mini = user["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "gpt-4o-mini")
            .unwrap();
        assert_eq!(mini, &json!({"name": "gpt-4o-mini", "aliases": ["mini"]}));
        let admin = registry_view(&r, true);
        let flash = admin["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "gemini-2-5-flash")
            .unwrap();
        assert_eq!(flash["upstream"], "gemini-2.5-flash");
        assert_eq!(flash["provider"], "gemini");
        assert_eq!(flash["capabilities"]["temperature"], json!([0.0, 2.0]));
        assert_eq!(flash["fallbacks"], json!(["gpt-4o-mini"]));
        assert_eq!(
            openai_retrieve(&r, "mini").unwrap(),
            json!({"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "openai"})
        );
        assert!(openai_retrieve(&r, "nope").is_err());
    }
}
