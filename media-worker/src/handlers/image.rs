//! `media.image.generate`: the model resolved and its limits checked, the image to start from
//! fetched, the provider asked (its rate limits and 5xx retried a few times), the images stored
//! (or inlined as `data:` URIs when `save` is false), and `text_completed` with
//! `data.images`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use common::events::{ErrorData, Progress, TextCompleted};
use common::payloads::media::ImagePayload;
use common::storage::Storage;
use common::worker::{Action, HandlerError, Task};

use super::with_retries;
use crate::config::MediaSettings;
use crate::error::MediaError;
use crate::fetch::Fetcher;
use crate::images::{Generated, ImageProviders, ImageRequest, parse_size};
use crate::models::{self, Kind, MediaModel, Provider};

/// The folder of stored images.
pub const FOLDER: &str = "images";

/// `media.image.generate`.
#[derive(Clone)]
pub struct GenerateImage {
    providers: Arc<ImageProviders>,
    storage: Storage,
    fetcher: Fetcher,
    default_model: &'static str,
    kling_default: String,
    max_inline_bytes: usize,
    timeout: Duration,
}

/// The default image model: `configured`, else the first of [`models::IMAGE_DEFAULTS`] whose
/// provider is configured, else the placeholder.
pub fn default_image_model(
    configured: Option<&str>,
    providers: &ImageProviders,
    kling_default: &str,
) -> anyhow::Result<&'static str> {
    if let Some(name) = configured {
        let model = models::resolve(name, Kind::Image, kling_default)
            .map_err(|e| anyhow::anyhow!("MEDIA__DEFAULT_IMAGE_MODEL: {e}"))?;
        if providers.get(model.provider).is_none() {
            anyhow::bail!(
                "MEDIA__DEFAULT_IMAGE_MODEL is {}, whose provider {} has no key here",
                model.id,
                model.provider.name()
            );
        }
        return Ok(model.id);
    }
    Ok(models::IMAGE_DEFAULTS
        .iter()
        .filter_map(|id| models::resolve(id, Kind::Image, kling_default).ok())
        .find(|m| providers.get(m.provider).is_some())
        .map_or("dummy", |m| m.id))
}

impl GenerateImage {
    /// Generation with `providers`, storing in `storage`.
    pub fn new(
        providers: Arc<ImageProviders>,
        storage: Storage,
        settings: &MediaSettings,
    ) -> anyhow::Result<Self> {
        let default_model = default_image_model(
            settings.default_image_model.as_deref(),
            &providers,
            &settings.kling_default_model,
        )?;
        Ok(Self {
            providers,
            storage,
            fetcher: Fetcher::new(settings.max_input_image_bytes, settings.allow_private_urls)?,
            default_model,
            kling_default: settings.kling_default_model.clone(),
            max_inline_bytes: settings.max_inline_bytes,
            timeout: Duration::from_secs(settings.image_timeout_secs.max(1)),
        })
    }

    /// The model of requests that name none.
    pub fn default_model(&self) -> &'static str {
        self.default_model
    }
}

fn rejected(code: &str, message: impl Into<String>) -> HandlerError {
    HandlerError::rejected(code, message)
}

/// The model a request names (or the default), refused with a sentence when unknown, of the
/// wrong kind, or of a provider without a key here.
pub fn plan_model(
    name: Option<&str>,
    kind: Kind,
    default: &str,
    kling_default: &str,
    configured: impl Fn(Provider) -> bool,
) -> Result<MediaModel, HandlerError> {
    let model = models::resolve(name.unwrap_or(default), kind, kling_default)
        .map_err(|e| rejected("unknown_model", e.to_string()))?;
    if !configured(model.provider) {
        let key = match model.provider {
            Provider::Kling => "KLINGAI_ACCESS_KEY and KLINGAI_SECRET_KEY".to_owned(),
            p => format!("{}_API_KEY", p.name().to_uppercase()),
        };
        return Err(rejected(
            "provider_unavailable",
            format!(
                "{} is served by {}, which is not configured here (the operator sets {key})",
                model.id,
                model.provider.name()
            ),
        ));
    }
    Ok(model)
}

#[async_trait]
impl Action<ImagePayload> for GenerateImage {
    async fn run(&self, task: Task, p: ImagePayload) -> Result<(), HandlerError> {
        let events = &task.events;
        let model = plan_model(
            p.model.as_deref(),
            Kind::Image,
            self.default_model,
            &self.kling_default,
            |provider| self.providers.get(provider).is_some(),
        )?;
        let Some(provider) = self.providers.get(model.provider).cloned() else {
            return Err(HandlerError::fatal(
                "worker",
                "internal",
                "the provider vanished",
            ));
        };
        let size = match p.size.as_deref().map(parse_size).transpose() {
            Ok(size) => size.flatten(),
            Err(e) => return Err(rejected("unsupported_option", e)),
        };
        let mut request = ImageRequest {
            model,
            prompt: p.prompt.clone(),
            size,
            aspect_ratio: p.aspect_ratio.clone(),
            n: p.n.unwrap_or(1),
            quality: p.quality.clone(),
            output_format: p.output_format.as_deref().map(|f| {
                let f = f.to_ascii_lowercase();
                if f == "jpg" { "jpeg".to_owned() } else { f }
            }),
            input_image: None,
            negative_prompt: p.negative_prompt.clone(),
            seed: p.seed,
        };
        if let Some(url) = &p.image_url {
            let fetched = tokio::select! {
                () = task.cancel.cancelled() => return Ok(()),
                r = self.fetcher.fetch(url) => r,
            };
            request.input_image = Some(fetched.map_err(|e| rejected(e.code(), e.to_string()))?);
        }
        provider
            .check(&request)
            .map_err(|e| rejected("unsupported_option", e))?;
        let placeholder = model.provider == Provider::Dummy;
        events
            .model_in_use(
                model.provider.name(),
                model.id,
                placeholder.then_some(
                    "a placeholder image made offline: no image provider key is set, or the \
                     request asked for the dummy model",
                ),
            )
            .await?;
        events
            .progress(&Progress {
                stage: "generating".into(),
                fraction: Some(0.0),
                message: format!("{} is drawing", model.id),
                ..Progress::default()
            })
            .await?;
        let generated = tokio::select! {
            () = task.cancel.cancelled() => return Ok(()),
            r = self.generate(provider.as_ref(), &request) => r,
        };
        let generated = match generated {
            Ok(g) => g,
            Err(e) => {
                events.error(&e.error_data("provider")).await?;
                return Ok(());
            }
        };
        let images = match self.deliver(&task, &generated, p.save).await {
            Ok(images) => images,
            Err(error) => {
                events.error(&error).await?;
                return Ok(());
            }
        };
        let mut done = TextCompleted::new("", generated.usage.clone(), "stop");
        let mut data = json!({
            "images": images,
            "model": model.id,
            "provider": model.provider.name(),
            "placeholder": placeholder,
        });
        if let Some(revised) = &generated.revised_prompt {
            data["revised_prompt"] = json!(revised);
        }
        done.data = Some(data);
        events.text_completed(&done).await?;
        Ok(())
    }
}

impl GenerateImage {
    /// The provider's images, with the retries of a rate limit, a 5xx or a broken connection,
    /// within the image timeout.
    async fn generate(
        &self,
        provider: &dyn crate::images::ImageProvider,
        request: &ImageRequest,
    ) -> Result<Generated, MediaError> {
        let attempts = with_retries("image", || provider.generate(request));
        tokio::time::timeout(self.timeout, attempts)
            .await
            .unwrap_or(Err(MediaError::Timeout(self.timeout.as_secs())))
    }

    /// The images as the answer gives them: stored with their URLs, or inline.
    async fn deliver(
        &self,
        task: &Task,
        generated: &Generated,
        save: bool,
    ) -> Result<Vec<Value>, ErrorData> {
        if !save {
            let total: usize = generated.images.iter().map(|i| i.bytes.len()).sum();
            if total > self.max_inline_bytes {
                return Err(ErrorData::new(
                    "validation",
                    "inline_too_large",
                    format!(
                        "the images are {total} bytes, more than the {} answered inline: ask \
                         with save true to get URLs",
                        self.max_inline_bytes
                    ),
                    false,
                ));
            }
            return Ok(generated
                .images
                .iter()
                .map(|i| {
                    json!({
                        "data_uri": format!("data:{};base64,{}", i.mime, STANDARD.encode(&i.bytes)),
                        "mime": i.mime,
                        "width": i.width,
                        "height": i.height,
                        "bytes": i.bytes.len(),
                    })
                })
                .collect());
        }
        let tenant = task.action.tenant_id;
        let mut stored = Vec::with_capacity(generated.images.len());
        for image in &generated.images {
            match self
                .storage
                .put(tenant, FOLDER, image.ext, image.mime, image.bytes.clone())
                .await
            {
                Ok(object) => stored.push((image, object)),
                Err(e) => {
                    // Nothing half-stored: the images already written go too.
                    for (_, object) in &stored {
                        let _ = self.storage.delete(tenant, &object.key).await;
                    }
                    tracing::error!(error = %e, "an image could not be stored");
                    return Err(ErrorData::new(
                        "storage",
                        "storage_unavailable",
                        "the images could not be stored",
                        true,
                    ));
                }
            }
        }
        Ok(stored
            .into_iter()
            .map(|(image, object)| {
                json!({
                    "url": object.url,
                    "url_expires_at": object.url_expires_at,
                    "key": object.key,
                    "mime": image.mime,
                    "width": image.width,
                    "height": image.height,
                    "bytes": object.size,
                })
            })
            .collect())
    }
}
