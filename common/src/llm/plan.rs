//! Which provider clients this process has, and the plan for a request: the model asked for, then
//! its fallbacks, each on a provider that is configured here.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{
    AnthropicProvider, DummyProvider, DummySettings, GeminiProvider, OpenAiProvider, TextProvider,
};
use crate::models::{ModelRegistry, ModelSpec, ProviderKind};
use crate::settings::Secret;

/// Credentials and endpoint of one provider, as this process may use them.
#[derive(Debug, Clone, Default)]
pub struct ProviderAccess {
    /// The API key.
    pub api_key: Option<Secret>,
    /// Overrides the registry's base URL.
    pub base_url: Option<String>,
}

/// An environment variable's value, unless unset or blank.
fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Access to each provider of `registry` from the environment: the key from the provider's
/// `api_key_env`, the base URL from `<PROVIDER>_BASE_URL` (empty values are ignored); providers
/// with neither are left out.
pub fn provider_access_from_env(registry: &ModelRegistry) -> BTreeMap<String, ProviderAccess> {
    let mut out = BTreeMap::new();
    for (name, spec) in registry.providers() {
        let access = ProviderAccess {
            api_key: spec
                .api_key_env
                .as_deref()
                .and_then(env_value)
                .map(Secret::new),
            base_url: env_value(&format!("{}_BASE_URL", name.to_uppercase())),
        };
        if access.api_key.is_some() || access.base_url.is_some() {
            out.insert(name.to_owned(), access);
        }
    }
    out
}

/// What `model_in_use` says when the dummy answers because no provider is configured.
pub const NO_KEY_NOTE: &str = "no provider key is set: the offline dummy provider answers";

/// One model on one provider, ready to call.
#[derive(Clone)]
pub struct Candidate {
    /// The provider's registry name (`openai`, `groq`, ...).
    pub provider_name: String,
    /// The client.
    pub provider: Arc<dyn TextProvider>,
    /// The model's registry name.
    pub model: String,
    /// The id sent upstream.
    pub upstream: String,
    /// Its capabilities.
    pub spec: ModelSpec,
}

/// The candidates for a request, in order, and a note for `model_in_use`.
#[derive(Clone)]
pub struct Plan {
    /// The model asked for, then its usable fallbacks.
    pub candidates: Vec<Candidate>,
    /// Why the answer does not come from what was asked for, if so.
    pub note: Option<&'static str>,
}

/// Why no plan could be made; the message lists what would work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The model is not in the registry.
    #[error(transparent)]
    UnknownModel(#[from] crate::models::UnknownModel),
    /// Neither the model nor any fallback has a configured provider.
    #[error("no configured provider serves {model}; set {hint}")]
    Unavailable {
        /// The model asked for.
        model: String,
        /// The settings that would enable it.
        hint: String,
    },
}

impl PlanError {
    /// A stable code for `error` events.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownModel(_) => "unknown_model",
            Self::Unavailable { .. } => "provider_unavailable",
        }
    }
}

/// The provider clients of this process, by provider name.
pub struct Providers {
    registry: ModelRegistry,
    clients: BTreeMap<String, Arc<dyn TextProvider>>,
    dummy: Arc<dyn TextProvider>,
}

impl Providers {
    /// Builds a client for every provider of `registry` that `access` configures (key set, or
    /// base URL set for providers that need no key); `dummy` paces the offline provider.
    pub fn new(
        registry: ModelRegistry,
        access: &BTreeMap<String, ProviderAccess>,
        dummy: DummySettings,
    ) -> anyhow::Result<Self> {
        let dummy: Arc<dyn TextProvider> = Arc::new(DummyProvider::new(dummy));
        let mut clients: BTreeMap<String, Arc<dyn TextProvider>> = BTreeMap::new();
        for (name, spec) in registry.providers() {
            let Some(access) = access.get(name) else {
                continue;
            };
            if spec.requires_key && access.api_key.is_none() {
                continue;
            }
            let base = access.base_url.as_deref().unwrap_or(&spec.base_url);
            let key = access.api_key.clone();
            let client: Arc<dyn TextProvider> = match spec.kind {
                ProviderKind::Openai => Arc::new(OpenAiProvider::new(base, key)?),
                ProviderKind::Anthropic => Arc::new(AnthropicProvider::new(base, key)?),
                ProviderKind::Gemini => Arc::new(GeminiProvider::new(base, key)?),
                ProviderKind::Dummy => continue,
            };
            clients.insert(name.to_owned(), client);
        }
        Ok(Self {
            registry,
            clients,
            dummy,
        })
    }

    /// The configured providers, for the start-up log.
    pub fn configured(&self) -> Vec<&str> {
        self.clients.keys().map(String::as_str).collect()
    }

    /// The registry in use.
    pub fn registry(&self) -> &ModelRegistry {
        &self.registry
    }

    fn client(&self, provider: &str, kind: ProviderKind) -> Option<Arc<dyn TextProvider>> {
        if kind == ProviderKind::Dummy {
            return Some(self.dummy.clone());
        }
        self.clients.get(provider).cloned()
    }

    /// Plans a request for `model` (the registry default when `None`).
    pub fn plan(&self, model: Option<&str>) -> Result<Plan, PlanError> {
        let asked = self.registry.resolve(model)?;
        if self.clients.is_empty() {
            // Nothing configured: the offline provider answers everything, and says so.
            return Ok(Plan {
                candidates: vec![Candidate {
                    provider_name: "dummy".into(),
                    provider: self.dummy.clone(),
                    model: "dummy".into(),
                    upstream: "dummy".into(),
                    spec: asked.spec.clone(),
                }],
                note: Some(NO_KEY_NOTE),
            });
        }
        let candidates: Vec<Candidate> = self
            .registry
            .chain(asked)
            .into_iter()
            .filter_map(|m| {
                Some(Candidate {
                    provider: self.client(m.provider_name, m.provider.kind)?,
                    provider_name: m.provider_name.to_owned(),
                    model: m.name.to_owned(),
                    upstream: m.upstream().to_owned(),
                    spec: m.spec.clone(),
                })
            })
            .collect();
        if candidates.is_empty() {
            let hint = asked
                .provider
                .api_key_env
                .clone()
                .unwrap_or_else(|| format!("{}_BASE_URL", asked.provider_name.to_uppercase()));
            return Err(PlanError::Unavailable {
                model: asked.name.to_owned(),
                hint,
            });
        }
        Ok(Plan {
            candidates,
            note: None,
        })
    }
}
