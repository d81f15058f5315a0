//! Provider batch APIs behind one trait: OpenAI Batches, Anthropic Message Batches and Gemini
//! Batch Mode. The job driver submits once (the ids are recorded before anything is polled),
//! polls until the provider's batch ends, cancels it on request, and converts its results into
//! the output and error files' lines (OpenAI's `BatchRequestOutput`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use common::batch::Job;
use common::llm::Candidate;
use common::models::ProviderKind;
use common::provider::ProviderError;

use crate::config::Settings;
use crate::output::Output;

/// What a submission left at the provider: the ids to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// The provider's batch id.
    pub batch_id: String,
    /// The provider's id of the uploaded input, where it has one (OpenAI).
    pub file_id: Option<String>,
}

/// A provider batch's state, as one poll saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Polled {
    /// Whether the provider's batch has ended (its results can be read).
    pub ended: bool,
    /// Its status in the provider's words.
    pub status: String,
    /// Requests answered so far.
    pub completed: u32,
    /// Requests failed so far.
    pub failed: u32,
}

/// One provider's batch API.
#[async_trait]
pub trait BatchApi: Send + Sync {
    /// Submits the job's requests: `requests` is a spool file with one validated OpenAI batch
    /// line (`custom_id`, `method`, `url`, `body`) per line; each body is converted for
    /// `candidate` (its `upstream` model id) and sent as the provider wants it (an uploaded
    /// file, a streamed JSON body, inline requests). The job id goes with it (OpenAI `metadata`,
    /// Gemini `display_name`) so [`BatchApi::find`] can find it again.
    async fn submit(
        &self,
        job: &Job,
        candidate: &Candidate,
        requests: &Path,
    ) -> Result<Submitted, ProviderError>;

    /// The largest input (bytes of the JSONL file) this API takes in one submission; a larger
    /// job runs line by line instead.
    fn max_input_bytes(&self) -> Option<u64> {
        None
    }

    /// A batch submitted for `job` by an earlier run that died before recording its id, if the
    /// provider lets one be found (`None` when it does not).
    async fn find(&self, job: &Job) -> Result<Option<Submitted>, ProviderError>;

    /// The batch's state now.
    async fn poll(&self, batch_id: &str) -> Result<Polled, ProviderError>;

    /// Asks the provider to cancel the batch (finished requests keep their results).
    async fn cancel(&self, batch_id: &str) -> Result<(), ProviderError>;

    /// Reads the ended batch's results into `output`: one line per request, answered ones as
    /// OpenAI chat completion bodies (`status_code` 200) in the output file, failed ones in the
    /// error file, requests the provider never ran as `batch_cancelled` / `batch_expired`.
    async fn results(
        &self,
        batch_id: &str,
        candidate: &Candidate,
        output: &mut Output,
    ) -> Result<(), ProviderError>;
}

/// The batch APIs this process can use, by provider name (those whose provider has a key).
#[derive(Default, Clone)]
pub struct BatchApis {
    apis: BTreeMap<String, Arc<dyn BatchApi>>,
}

impl BatchApis {
    /// A client for every configured provider whose kind has a batch API.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let registry = settings.registry()?;
        let mut apis: BTreeMap<String, Arc<dyn BatchApi>> = BTreeMap::new();
        for (name, spec) in registry.providers() {
            let Some(access) = settings.providers.get(name) else {
                continue;
            };
            let Some(key) = access.api_key.clone() else {
                continue;
            };
            let base = access.base_url.as_deref().unwrap_or(&spec.base_url);
            let api: Arc<dyn BatchApi> = match spec.kind {
                ProviderKind::Openai => Arc::new(openai::OpenAiBatches::new(base, key)?),
                ProviderKind::Anthropic => Arc::new(anthropic::AnthropicBatches::new(base, key)?),
                ProviderKind::Gemini => Arc::new(gemini::GeminiBatches::new(
                    base,
                    key,
                    settings.batch.gemini_inline_max_bytes,
                )?),
                ProviderKind::Dummy => continue,
            };
            apis.insert(name.to_owned(), api);
        }
        Ok(Self { apis })
    }

    /// The batch API of `provider`, if configured.
    pub fn get(&self, provider: &str) -> Option<Arc<dyn BatchApi>> {
        self.apis.get(provider).cloned()
    }

    /// The providers with a batch API here, for the start-up log.
    pub fn configured(&self) -> Vec<&str> {
        self.apis.keys().map(String::as_str).collect()
    }
}

pub mod anthropic;
pub mod gemini;
pub mod openai;
mod wire;
