//! The model registry (`config/models.toml`): models, their providers, capabilities and fallbacks.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::settings::SettingsError;

/// The registry compiled into every binary, used when no `MODELS_FILE` is given.
pub const EMBEDDED: &str = include_str!("../../config/models.toml");

/// The wire format a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI Chat Completions (and every OpenAI-compatible server).
    Openai,
    /// Anthropic Messages.
    Anthropic,
    /// Google Gemini `generateContent`.
    Gemini,
    /// The offline dummy provider.
    Dummy,
}

/// How to reach a provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProviderSpec {
    /// Its wire format.
    pub kind: ProviderKind,
    /// Default endpoint; `<PROVIDER>_BASE_URL` overrides it.
    pub base_url: String,
    /// The environment variable holding its key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Whether it is usable without a key (then only once its base URL is set explicitly).
    #[serde(default = "yes")]
    pub requires_key: bool,
}

fn yes() -> bool {
    true
}

/// What a model can do, and where it falls back to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelSpec {
    /// The provider that serves it (a key of `providers`).
    pub provider: String,
    /// The provider's id for it; the registry name when absent.
    #[serde(default)]
    pub upstream: Option<String>,
    /// Other names that select it.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Streams token by token.
    #[serde(default = "yes")]
    pub streaming: bool,
    /// Accepts tool definitions.
    #[serde(default)]
    pub tools: bool,
    /// Produces reasoning.
    #[serde(default)]
    pub reasoning: bool,
    /// Accepts images.
    #[serde(default)]
    pub vision: bool,
    /// Accepts audio as input (OpenAI's `input_audio` content parts; Gemini's audio
    /// `inlineData`): a voice turn with `audio.direct` needs it.
    #[serde(default)]
    pub audio_input: bool,
    /// Accepted temperature range; absent: the model refuses a temperature (none is sent).
    #[serde(default)]
    pub temperature: Option<[f64; 2]>,
    /// Largest output it produces.
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    /// Available through the provider's batch API.
    #[serde(default)]
    pub batch: bool,
    /// Models to try, in order, when this one fails before its first token.
    #[serde(default)]
    pub fallback: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct RegistryFile {
    default: String,
    providers: BTreeMap<String, ProviderSpec>,
    models: BTreeMap<String, ModelSpec>,
}

/// A model name that is not in the registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown model {name:?}; available models: {}", available.join(", "))]
pub struct UnknownModel {
    /// What was asked for.
    pub name: String,
    /// Every registered model name.
    pub available: Vec<String>,
}

/// A resolved model.
#[derive(Debug, Clone, Copy)]
pub struct Model<'a> {
    /// Its registry name.
    pub name: &'a str,
    /// Its spec.
    pub spec: &'a ModelSpec,
    /// Its provider's name.
    pub provider_name: &'a str,
    /// Its provider.
    pub provider: &'a ProviderSpec,
}

impl Model<'_> {
    /// The id sent to the provider.
    pub fn upstream(&self) -> &str {
        self.spec.upstream.as_deref().unwrap_or(self.name)
    }
}

/// The loaded, validated registry.
#[derive(Debug, Clone)]
pub struct ModelRegistry {
    file: RegistryFile,
    names: HashMap<String, String>,
}

impl ModelRegistry {
    /// Loads `path` when given, else the embedded registry.
    pub fn load(path: Option<&Path>) -> Result<Self, SettingsError> {
        match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    SettingsError::Invalid(format!("MODELS_FILE {}: {e}", p.display()))
                })?;
                Self::from_toml(&text)
            }
            None => Self::from_toml(EMBEDDED),
        }
    }

    /// Parses and validates a registry.
    pub fn from_toml(text: &str) -> Result<Self, SettingsError> {
        let file: RegistryFile = toml::from_str(text)
            .map_err(|e| SettingsError::Invalid(format!("model registry: {e}")))?;
        let invalid = |m: String| Err(SettingsError::Invalid(format!("model registry: {m}")));
        let mut names = HashMap::new();
        for (name, spec) in &file.models {
            if !file.providers.contains_key(&spec.provider) {
                return invalid(format!("{name} names unknown provider {}", spec.provider));
            }
            for f in &spec.fallback {
                if !file.models.contains_key(f) {
                    return invalid(format!("{name} falls back to unknown model {f}"));
                }
            }
            for n in std::iter::once(name).chain(&spec.aliases) {
                if names.insert(n.clone(), name.clone()).is_some() {
                    return invalid(format!("the name {n} is used twice"));
                }
            }
        }
        if !file.models.contains_key(&file.default) {
            return invalid(format!("default model {} is not registered", file.default));
        }
        Ok(Self { file, names })
    }

    /// The default model's name.
    pub fn default_model(&self) -> &str {
        &self.file.default
    }

    /// Resolves a name or alias (the default when `None` or empty).
    pub fn resolve(&self, name: Option<&str>) -> Result<Model<'_>, UnknownModel> {
        let wanted = name.filter(|n| !n.is_empty()).unwrap_or(&self.file.default);
        let canonical = self.names.get(wanted).ok_or_else(|| UnknownModel {
            name: wanted.to_owned(),
            available: self.file.models.keys().cloned().collect(),
        })?;
        self.model(canonical).ok_or_else(|| UnknownModel {
            name: wanted.to_owned(),
            available: self.file.models.keys().cloned().collect(),
        })
    }

    fn model(&self, name: &str) -> Option<Model<'_>> {
        let (name, spec) = self.file.models.get_key_value(name)?;
        let (provider_name, provider) = self.file.providers.get_key_value(&spec.provider)?;
        Some(Model {
            name,
            spec,
            provider_name,
            provider,
        })
    }

    /// A model followed by its fallbacks (each once, depth-first, cycles cut).
    pub fn chain(&self, first: Model<'_>) -> Vec<Model<'_>> {
        let mut out: Vec<Model<'_>> = Vec::new();
        let mut todo = vec![first.name.to_owned()];
        while let Some(name) = todo.pop() {
            if out.iter().any(|m| m.name == name) {
                continue;
            }
            if let Some(m) = self.model(&name) {
                todo.extend(m.spec.fallback.iter().rev().cloned());
                out.push(m);
            }
        }
        out
    }

    /// Every model, by name.
    pub fn models(&self) -> impl Iterator<Item = Model<'_>> {
        self.file.models.keys().filter_map(|n| self.model(n))
    }

    /// Every provider, by name.
    pub fn providers(&self) -> impl Iterator<Item = (&str, &ProviderSpec)> {
        self.file.providers.iter().map(|(n, p)| (n.as_str(), p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_registry_is_valid_and_resolves_aliases() {
        let r = ModelRegistry::load(None).unwrap();
        let m = r.resolve(Some("gemini")).unwrap();
        assert_eq!(
            (m.name, m.upstream(), m.provider.kind),
            ("gemini-2-5-flash", "gemini-2.5-flash", ProviderKind::Gemini)
        );
        assert_eq!(r.resolve(None).unwrap().name, r.default_model());
        let chain: Vec<&str> = r
            .chain(r.resolve(Some("mini")).unwrap())
            .iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(
            chain,
            ["gpt-4o-mini", "claude-haiku-4-5", "gemini-2-5-flash"]
        );
        assert!(
            r.resolve(Some("o4-mini"))
                .unwrap()
                .spec
                .temperature
                .is_none()
        );
    }

    #[test]
    fn unknown_model_lists_what_exists() {
        let r = ModelRegistry::load(None).unwrap();
        let err = r.resolve(Some("gpt-17")).unwrap_err().to_string();
        assert!(
            err.contains("gpt-17") && err.contains("claude-sonnet-4-5"),
            "{err}"
        );
    }

    #[test]
    fn invalid_registries_are_refused() {
        let base = "default = \"a\"\n[providers.p]\nkind = \"openai\"\nbase_url = \"x\"\n";
        assert!(
            ModelRegistry::from_toml(&format!("{base}[models.a]\nprovider = \"q\"\n")).is_err()
        );
        assert!(
            ModelRegistry::from_toml(&format!(
                "{base}[models.a]\nprovider = \"p\"\nfallback = [\"b\"]\n"
            ))
            .is_err()
        );
        let dup = format!(
            "{base}[models.a]\nprovider = \"p\"\n[models.b]\nprovider = \"p\"\naliases = [\"a\"]\n"
        );
        assert!(ModelRegistry::from_toml(&dup).is_err());
        assert!(ModelRegistry::from_toml(&format!("{base}[models.a]\nprovider = \"p\"\n")).is_ok());
    }
}
