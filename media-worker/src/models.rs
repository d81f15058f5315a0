//! The media model registry: every image and video model a request may name, the provider that
//! serves it, the provider's own model id, and the aliases the original system's clients use
//! (`flux-pro`, `nano-banana`, ...). What each model accepts (sizes, counts, durations) is its
//! provider's to check.

/// Which provider API serves a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Provider {
    /// The offline placeholder image (no key, no network).
    Dummy,
    /// OpenAI's Images API (`/v1/images/generations`).
    OpenAi,
    /// xAI's Images API (OpenAI's shape at `api.x.ai`).
    Xai,
    /// Black Forest Labs (Flux): submit, poll, download.
    Bfl,
    /// Stability AI's Stable Image API (and the v1 API for SDXL).
    Stability,
    /// Gemini's image models (`generateContent`) and Imagen (`predict`).
    Gemini,
    /// OpenAI's Videos API (Sora).
    Sora,
    /// Veo on the Gemini API (`predictLongRunning`).
    Veo,
    /// KlingAI's video API.
    Kling,
}

impl Provider {
    /// The name in events and results, and the key's name in settings.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dummy => "dummy",
            Self::OpenAi | Self::Sora => "openai",
            Self::Xai => "xai",
            Self::Bfl => "bfl",
            Self::Stability => "stability",
            Self::Gemini | Self::Veo => "gemini",
            Self::Kling => "klingai",
        }
    }
}

/// What a model makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Images.
    Image,
    /// Videos.
    Video,
}

/// One model of the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaModel {
    /// Its name in requests and results.
    pub id: &'static str,
    /// The provider's own id of it.
    pub upstream: &'static str,
    /// Who serves it.
    pub provider: Provider,
    /// Images or videos.
    pub kind: Kind,
    /// Other names requests may use.
    pub aliases: &'static [&'static str],
    /// Kept for old clients; the provider's newer models are preferred.
    pub legacy: bool,
}

const fn image(
    id: &'static str,
    upstream: &'static str,
    provider: Provider,
    aliases: &'static [&'static str],
) -> MediaModel {
    MediaModel {
        id,
        upstream,
        provider,
        kind: Kind::Image,
        aliases,
        legacy: false,
    }
}

const fn video(
    id: &'static str,
    upstream: &'static str,
    provider: Provider,
    aliases: &'static [&'static str],
) -> MediaModel {
    let mut model = image(id, upstream, provider, aliases);
    model.kind = Kind::Video;
    model
}

const fn legacy(mut model: MediaModel) -> MediaModel {
    model.legacy = true;
    model
}

use Provider::{Bfl, Dummy, Gemini, Kling, OpenAi, Sora, Stability, Veo, Xai};

/// Every model, defaults of each provider first.
pub const MODELS: &[MediaModel] = &[
    image("dummy", "placeholder", Dummy, &["placeholder"]),
    // OpenAI
    image(
        "gpt-image-1.5",
        "gpt-image-1.5",
        OpenAi,
        &["openai-1.5", "openai"],
    ),
    image("gpt-image-1", "gpt-image-1", OpenAi, &["openai-1"]),
    image(
        "gpt-image-1-mini",
        "gpt-image-1-mini",
        OpenAi,
        &["openai-mini"],
    ),
    legacy(image("dall-e-3", "dall-e-3", OpenAi, &["dalle-3"])),
    // Black Forest Labs (FLUX.2, then FLUX.1)
    image("flux-2-pro", "flux-2-pro", Bfl, &["flux-pro", "flux"]),
    image("flux-2-max", "flux-2-max", Bfl, &["flux-max"]),
    image("flux-2-flex", "flux-2-flex", Bfl, &["flux-flex"]),
    legacy(image("flux-pro-1.1", "flux-pro-1.1", Bfl, &["flux-1"])),
    legacy(image("flux-dev", "flux-dev", Bfl, &[])),
    legacy(image(
        "flux-kontext-pro",
        "flux-kontext-pro",
        Bfl,
        &["flux-kontext"],
    )),
    // Stability AI
    image(
        "core",
        "core",
        Stability,
        &["stability", "stable-image-core"],
    ),
    image("sd3.5", "sd3.5-large", Stability, &["sd3.5-large"]),
    image("sd3", "sd3.5-medium", Stability, &[]),
    legacy(image(
        "sdxl",
        "stable-diffusion-xl-1024-v1-0",
        Stability,
        &["sdxl-1.0"],
    )),
    // Gemini ("Nano Banana") and Imagen
    image(
        "gemini-2.5-flash-image",
        "gemini-2.5-flash-image",
        Gemini,
        &["nano-banana", "gemini"],
    ),
    image(
        "gemini-3-pro-image-preview",
        "gemini-3-pro-image-preview",
        Gemini,
        &["nano-banana-pro", "gemini-pro"],
    ),
    legacy(image(
        "imagen-4.0-generate-001",
        "imagen-4.0-generate-001",
        Gemini,
        &["imagen-4", "imagen"],
    )),
    // xAI
    image("grok-2-image", "grok-2-image", Xai, &["grok", "xai"]),
    // Veo
    video(
        "veo-3.1-fast",
        "veo-3.1-fast-generate-preview",
        Veo,
        &["veo-fast", "veo"],
    ),
    video(
        "veo-3.1-quality",
        "veo-3.1-generate-preview",
        Veo,
        &["veo-3.1", "veo-quality"],
    ),
    // Sora
    video("sora-2", "sora-2", Sora, &["sora"]),
    video("sora-2-pro", "sora-2-pro", Sora, &[]),
    // KlingAI (V1, V2, V2.6, O1)
    video("kling-v2-1", "kling-v2-1", Kling, &[]),
    video("kling-v1", "kling-v1", Kling, &[]),
    video("kling-v1-5", "kling-v1-5", Kling, &[]),
    video("kling-v1-6", "kling-v1-6", Kling, &[]),
    video("kling-v2-master", "kling-v2-master", Kling, &[]),
    video("kling-v2-5", "kling-v2-5", Kling, &[]),
    video("kling-v2-5-turbo", "kling-v2-5-turbo", Kling, &[]),
    video("kling-v2-6", "kling-v2-6", Kling, &[]),
    video("kling-v2-6-pro", "kling-v2-6", Kling, &[]),
    video("kling-o1", "kling-o1", Kling, &[]),
    video("kling-o1-pro", "kling-o1", Kling, &[]),
];

/// The image models tried, in order, for a default when none is set.
pub const IMAGE_DEFAULTS: [&str; 5] = [
    "gpt-image-1.5",
    "flux-2-pro",
    "gemini-2.5-flash-image",
    "core",
    "grok-2-image",
];
/// The video models tried, in order, for a default when none is set.
pub const VIDEO_DEFAULTS: [&str; 3] = ["veo-3.1-fast", "sora-2", "kling-v2-1"];

/// Why a model name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// Not in the registry.
    #[error("unknown {kind} model {name:?} (known: {known})")]
    Unknown {
        /// `image` or `video`.
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// The names that exist.
        known: String,
    },
    /// A model of the other kind (a video model asked for an image).
    #[error("{name} makes {makes}, not {wanted}")]
    WrongKind {
        /// The name asked for.
        name: String,
        /// What it makes.
        makes: &'static str,
        /// What was asked.
        wanted: &'static str,
    },
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Image => "image",
        Kind::Video => "video",
    }
}

/// The model named `name` (an id or an alias, any case) of `kind`. `kling` is the KlingAI model
/// `kling_default`.
pub fn resolve(name: &str, kind: Kind, kling_default: &str) -> Result<MediaModel, ModelError> {
    let wanted = name.trim().to_ascii_lowercase();
    let wanted = if wanted == "kling" || wanted == "klingai" {
        kling_default.to_ascii_lowercase()
    } else {
        wanted
    };
    let found = MODELS
        .iter()
        .find(|m| m.id == wanted)
        .or_else(|| MODELS.iter().find(|m| m.aliases.contains(&wanted.as_str())));
    match found {
        Some(m) if m.kind == kind => Ok(*m),
        Some(m) => Err(ModelError::WrongKind {
            name: name.to_owned(),
            makes: if m.kind == Kind::Image {
                "images"
            } else {
                "videos"
            },
            wanted: if kind == Kind::Image {
                "an image"
            } else {
                "a video"
            },
        }),
        None => Err(ModelError::Unknown {
            kind: kind_name(kind),
            name: name.chars().take(100).collect(),
            known: MODELS
                .iter()
                .filter(|m| m.kind == kind)
                .map(|m| m.id)
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_aliases_are_unique() {
        let mut names: Vec<&str> = MODELS
            .iter()
            .flat_map(|m| std::iter::once(m.id).chain(m.aliases.iter().copied()))
            .collect();
        let all = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all, "a name is used twice");
    }

    #[test]
    fn the_seed_aliases_resolve() {
        let image = |n: &str| resolve(n, Kind::Image, "kling-v2-1").unwrap();
        assert_eq!(image("nano-banana").id, "gemini-2.5-flash-image");
        assert_eq!(image("nano-banana-pro").id, "gemini-3-pro-image-preview");
        assert_eq!(image("gemini-pro").id, "gemini-3-pro-image-preview");
        assert_eq!(image("flux-pro").id, "flux-2-pro");
        assert_eq!(image("flux-max").id, "flux-2-max");
        assert_eq!(image("FLUX-1").id, "flux-pro-1.1");
        assert_eq!(image("openai-1.5").id, "gpt-image-1.5");
        assert_eq!(image("openai").id, "gpt-image-1.5");
        assert_eq!(image("flux").provider, Provider::Bfl);
        let video = resolve("kling", Kind::Video, "kling-v1-6").unwrap();
        assert_eq!(video.id, "kling-v1-6");
        assert_eq!(
            resolve("veo-3.1-fast", Kind::Video, "kling-v2-1")
                .unwrap()
                .upstream,
            "veo-3.1-fast-generate-preview"
        );
    }

    #[test]
    fn unknown_and_wrong_kind_are_told_apart() {
        let e = resolve("sora-2", Kind::Image, "kling-v2-1").unwrap_err();
        assert!(e.to_string().contains("makes videos"), "{e}");
        let e = resolve("picasso", Kind::Image, "kling-v2-1").unwrap_err();
        assert!(e.to_string().contains("gpt-image-1.5"), "{e}");
    }
}
