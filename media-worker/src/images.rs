//! Image providers behind one trait, what a request asks of them, what they answer, and the set
//! this process may use.

mod bfl;
pub mod dummy;
mod gemini;
mod openai;
mod stability;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::Value;

pub use bfl::Bfl;
pub use dummy::Dummy;
pub use gemini::GeminiImages;
pub use openai::OpenAiImages;
pub use stability::Stability;

use crate::config::Settings;
use crate::error::MediaError;
use crate::models::{MediaModel, Provider};

/// An image given to start from (image-to-image), fetched and checked.
#[derive(Debug, Clone)]
pub struct InputImage {
    /// Its bytes.
    pub bytes: Bytes,
    /// Its MIME type, from its content.
    pub mime: &'static str,
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
}

/// What a provider is asked to draw (the model resolved, the request's shape checked).
#[derive(Debug, Clone)]
pub struct ImageRequest {
    /// The model.
    pub model: MediaModel,
    /// What to draw.
    pub prompt: String,
    /// `(width, height)`; `None` for the model's default (`auto`).
    pub size: Option<(u32, u32)>,
    /// `W:H`, when the request gave one.
    pub aspect_ratio: Option<String>,
    /// How many images.
    pub n: u32,
    /// The model's quality setting.
    pub quality: Option<String>,
    /// `png`, `jpeg` or `webp`.
    pub output_format: Option<String>,
    /// The image to start from.
    pub input_image: Option<InputImage>,
    /// What not to show.
    pub negative_prompt: Option<String>,
    /// A seed.
    pub seed: Option<u32>,
}

/// One image a provider made.
#[derive(Debug, Clone)]
pub struct GeneratedImage {
    /// Its bytes.
    pub bytes: Bytes,
    /// Its MIME type, read from its content.
    pub mime: &'static str,
    /// The file extension of that type.
    pub ext: &'static str,
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
}

/// What a provider answered.
#[derive(Debug, Clone, Default)]
pub struct Generated {
    /// The images, in order.
    pub images: Vec<GeneratedImage>,
    /// The prompt as the provider rewrote it, when it says.
    pub revised_prompt: Option<String>,
    /// The provider's usage figures, as it gives them (`{}` when it gives none).
    pub usage: Value,
}

/// The type and size of an image from its bytes: `(mime, ext, width, height)`; `None` when the
/// bytes are no image of a type this service keeps (PNG, JPEG, WebP, GIF).
pub fn sniff(bytes: &[u8]) -> Option<(&'static str, &'static str, u32, u32)> {
    let (mime, ext) = match imagesize::image_type(bytes).ok()? {
        imagesize::ImageType::Png => ("image/png", "png"),
        imagesize::ImageType::Jpeg => ("image/jpeg", "jpg"),
        imagesize::ImageType::Webp => ("image/webp", "webp"),
        imagesize::ImageType::Gif => ("image/gif", "gif"),
        _ => return None,
    };
    let size = imagesize::blob_size(bytes).ok()?;
    let w = u32::try_from(size.width).ok().filter(|w| *w > 0)?;
    let h = u32::try_from(size.height).ok().filter(|h| *h > 0)?;
    Some((mime, ext, w, h))
}

/// A provider's image bytes, checked to be an image within `max_bytes`.
pub fn image_from(bytes: Bytes, max_bytes: usize) -> Result<GeneratedImage, MediaError> {
    if bytes.len() > max_bytes {
        return Err(MediaError::TooLarge(format!(
            "the provider's image is larger than {max_bytes} bytes"
        )));
    }
    let (mime, ext, width, height) = sniff(&bytes).ok_or_else(|| {
        MediaError::BadOutput("the provider's answer is not a PNG, JPEG, WebP or GIF image".into())
    })?;
    Ok(GeneratedImage {
        bytes,
        mime,
        ext,
        width,
        height,
    })
}

/// Base64 (standard, with or without padding) to bytes, as providers send images.
pub fn decode_base64(data: &str) -> Result<Bytes, MediaError> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    let data = data.trim();
    STANDARD
        .decode(data)
        .or_else(|_| STANDARD_NO_PAD.decode(data))
        .map(Bytes::from)
        .map_err(|_| MediaError::BadOutput("the provider's image is not valid base64".into()))
}

/// An image provider.
#[async_trait]
pub trait ImageProvider: Send + Sync {
    /// Who it is.
    fn provider(&self) -> Provider;
    /// Refuses a request the model cannot serve (a size, a count, an option), with a sentence
    /// for the client.
    fn check(&self, request: &ImageRequest) -> Result<(), String>;
    /// Draws.
    async fn generate(&self, request: &ImageRequest) -> Result<Generated, MediaError>;
}

/// The providers of this process, by provider.
pub struct ImageProviders {
    by_provider: BTreeMap<Provider, Arc<dyn ImageProvider>>,
}

impl std::fmt::Debug for ImageProviders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_provider.keys()).finish()
    }
}

impl ImageProviders {
    /// The providers whose keys are set, and the offline placeholder always.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let m = &settings.media;
        let mut by_provider: BTreeMap<Provider, Arc<dyn ImageProvider>> = BTreeMap::new();
        by_provider.insert(Provider::Dummy, Arc::new(Dummy::new(m.dummy_max_side)));
        if let Some(access) = settings.access("openai") {
            by_provider.insert(
                Provider::OpenAi,
                Arc::new(OpenAiImages::openai(access, m.max_image_bytes)?),
            );
        }
        if let Some(access) = settings.access("xai") {
            by_provider.insert(
                Provider::Xai,
                Arc::new(OpenAiImages::xai(access, m.max_image_bytes)?),
            );
        }
        if let Some(access) = settings.access("bfl") {
            by_provider.insert(Provider::Bfl, Arc::new(Bfl::new(access, m)?));
        }
        if let Some(access) = settings.access("stability") {
            by_provider.insert(
                Provider::Stability,
                Arc::new(Stability::new(access, m.max_image_bytes)?),
            );
        }
        if let Some(access) = settings.access("gemini") {
            by_provider.insert(
                Provider::Gemini,
                Arc::new(GeminiImages::new(access, m.max_image_bytes)?),
            );
        }
        Ok(Self { by_provider })
    }

    /// The provider serving `model`, when configured here.
    pub fn get(&self, provider: Provider) -> Option<&Arc<dyn ImageProvider>> {
        self.by_provider.get(&provider)
    }

    /// The names of the configured providers.
    pub fn configured(&self) -> Vec<&'static str> {
        self.by_provider.keys().map(|p| p.name()).collect()
    }
}

/// Parses `WIDTHxHEIGHT` (`None` for `auto`).
pub fn parse_size(size: &str) -> Result<Option<(u32, u32)>, String> {
    let size = size.trim();
    if size.eq_ignore_ascii_case("auto") {
        return Ok(None);
    }
    let parsed = size
        .split_once(['x', 'X'])
        .and_then(|(w, h)| Some((w.trim().parse::<u32>().ok()?, h.trim().parse::<u32>().ok()?)))
        .filter(|(w, h)| *w > 0 && *h > 0);
    match parsed {
        Some(s) => Ok(Some(s)),
        None => Err(format!(
            "size {size:?} is not WIDTHxHEIGHT (such as 1024x1024) or auto"
        )),
    }
}

/// The aspect ratio `W:H` of a size, reduced (`1792x1024` → `7:4`).
pub fn ratio_of((w, h): (u32, u32)) -> (u32, u32) {
    fn gcd(a: u32, b: u32) -> u32 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    let g = gcd(w, h).max(1);
    (w / g, h / g)
}

/// The aspect ratio of `ratios` a request asks for: its `aspect_ratio`, else the one its size
/// has (within 2 %), else `None` (the model's default). A ratio the model does not offer is
/// refused with the ones it does.
pub fn pick_ratio(request: &ImageRequest, ratios: &[&str]) -> Result<Option<String>, String> {
    let offered = || ratios.join(", ");
    if let Some(r) = &request.aspect_ratio {
        let r = r.trim();
        return match ratios.iter().find(|x| **x == r) {
            Some(x) => Ok(Some((*x).to_owned())),
            None => Err(format!(
                "{} takes the aspect ratios {}, not {r}",
                request.model.id,
                offered()
            )),
        };
    }
    let Some((w, h)) = request.size else {
        return Ok(None);
    };
    let wanted = f64::from(w) / f64::from(h);
    let close = ratios.iter().find(|x| {
        x.split_once(':')
            .and_then(|(a, b)| Some(a.parse::<f64>().ok()? / b.parse::<f64>().ok()?))
            .is_some_and(|r| (r - wanted).abs() / r < 0.02)
    });
    match close {
        Some(x) => Ok(Some((*x).to_owned())),
        None => Err(format!(
            "{} cannot make {w}x{h}: it takes the aspect ratios {} (give aspect_ratio, or a size \
             with one of them)",
            request.model.id,
            offered()
        )),
    }
}

/// Refuses `n` above `max` for `model`.
pub fn check_n(request: &ImageRequest, max: u32) -> Result<(), String> {
    if request.n > max {
        return Err(format!(
            "{} makes at most {max} image{} per request, not {}",
            request.model.id,
            if max == 1 { "" } else { "s" },
            request.n
        ));
    }
    Ok(())
}

/// Refuses a prompt longer than `max` characters for `model`.
pub fn check_prompt(request: &ImageRequest, max: usize) -> Result<(), String> {
    let len = request.prompt.chars().count();
    if len > max {
        return Err(format!(
            "{} takes prompts of at most {max} characters, not {len}",
            request.model.id
        ));
    }
    Ok(())
}

/// Refuses an input image for a model that takes none.
pub fn check_no_input(request: &ImageRequest) -> Result<(), String> {
    if request.input_image.is_some() {
        return Err(format!(
            "{} does not take an image to start from (image_url): FLUX.2, Kontext and the Gemini image models do",
            request.model.id
        ));
    }
    Ok(())
}

/// Refuses an output format outside `formats`.
pub fn check_format(request: &ImageRequest, formats: &[&str]) -> Result<(), String> {
    if let Some(f) = &request.output_format
        && !formats.contains(&f.as_str())
    {
        return Err(format!(
            "{} makes {}, not {f}",
            request.model.id,
            formats.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ratios() {
        assert_eq!(parse_size("1024x768").unwrap(), Some((1024, 768)));
        assert_eq!(parse_size("auto").unwrap(), None);
        assert!(parse_size("big").is_err());
        assert!(parse_size("0x5").is_err());
        assert_eq!(ratio_of((1792, 1024)), (7, 4));
    }
}
