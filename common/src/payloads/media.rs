//! The `data` of the `media.*` actions: generate images, generate videos, extend a video. Shape
//! and range rules live here, for the gateway and the media-worker alike; what one model can make
//! (its sizes, counts, durations, prompt length) is the media-worker's to say, from its model
//! registry (an `error` of stage `validation`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Invalid, Payload, storable};

/// The action type that generates images (answer: `text_completed` with `data.images`).
pub const GENERATE_IMAGE: &str = "media.image.generate";
/// The action type that generates a video (answer: `progress` events while the provider works,
/// then `text_completed` with `data.video`).
pub const GENERATE_VIDEO: &str = "media.video.generate";
/// The action type that extends a video made earlier (KlingAI).
pub const EXTEND_VIDEO: &str = "media.video.extend";

/// The longest prompt any model takes, characters (OpenAI's GPT image models); a model's own
/// limit may be smaller.
pub const MAX_PROMPT_CHARS: usize = 32_000;
/// The most images one request asks for (a model's own limit may be smaller).
pub const MAX_IMAGES: u32 = 10;
/// The longest `image_url`, characters (a `data:` URI of an image of a few MB fits).
pub const MAX_IMAGE_URL_CHARS: usize = 16 << 20;
/// The most points of one motion-brush trajectory (KlingAI's limit).
pub const MAX_TRAJECTORY_POINTS: usize = 77;
/// The longest video an extension may reach, seconds (KlingAI's limit).
pub const MAX_EXTENDED_SECS: u32 = 180;

fn short(value: &Option<String>, field: &str, max: usize) -> Result<(), Invalid> {
    let Some(value) = value else { return Ok(()) };
    if value.trim().is_empty() {
        return Err(Invalid(format!("{field} must not be empty")));
    }
    crate::text::check(field, value, max).map_err(Invalid)
}

fn prompt(prompt: &str, field: &str) -> Result<(), Invalid> {
    if prompt.trim().is_empty() {
        return Err(Invalid(format!("{field} must not be empty")));
    }
    storable(prompt, field)?;
    if prompt.chars().count() > MAX_PROMPT_CHARS {
        return Err(Invalid(format!(
            "{field} is longer than {MAX_PROMPT_CHARS} characters"
        )));
    }
    Ok(())
}

fn image_url(url: &Option<String>, field: &str) -> Result<(), Invalid> {
    let Some(url) = url else { return Ok(()) };
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if !(lower.starts_with("http://")
        || lower.starts_with("https://")
        || lower.starts_with("data:"))
    {
        return Err(Invalid(format!(
            "{field} must be an http(s) URL or a data: URI of an image"
        )));
    }
    if url.len() > MAX_IMAGE_URL_CHARS {
        return Err(Invalid(format!(
            "{field} is longer than {MAX_IMAGE_URL_CHARS} characters"
        )));
    }
    if url.chars().any(char::is_whitespace) && !lower.starts_with("data:") {
        return Err(Invalid(format!("{field} must not contain spaces")));
    }
    Ok(())
}

fn default_true() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

/// `media.image.generate`: images from a prompt (and, for models that take one, an image).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ImagePayload {
    /// What to draw.
    #[schema(max_length = 32000)]
    pub prompt: String,
    /// A model or an alias of the media-worker's registry (`gpt-image-1.5`, `flux-pro`,
    /// `nano-banana`, `dummy`, ...); the worker's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 100)]
    pub model: Option<String>,
    /// `WIDTHxHEIGHT` (`1024x1024`) or `auto`; a size the model cannot make is refused. Models
    /// that take an aspect ratio get the one this size has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 20)]
    pub size: Option<String>,
    /// `W:H` (`16:9`) for models that take an aspect ratio rather than a size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 10)]
    pub aspect_ratio: Option<String>,
    /// Images to make, 1 to 10 (a model's own limit may be lower); 1 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 10)]
    pub n: Option<u32>,
    /// The model's quality setting (`low`, `medium`, `high`, `auto`; `standard`, `hd` for
    /// dall-e-3; `1K`, `2K`, `4K` for Gemini's image models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 20)]
    pub quality: Option<String>,
    /// `png`, `jpeg` or `webp`, where the model lets one choose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 10)]
    pub output_format: Option<String>,
    /// An image to start from (image-to-image, Flux): an http(s) URL the worker fetches, or a
    /// `data:` URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    /// What the image should not show, where the model takes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 10000)]
    pub negative_prompt: Option<String>,
    /// A seed, where the model takes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u32>,
    /// Store the images and answer their URLs (the default); `false` answers them inline as
    /// `data:` URIs, up to `MEDIA__MAX_INLINE_BYTES`. `save_to_db` is accepted too.
    #[serde(
        default = "default_true",
        alias = "save_to_db",
        skip_serializing_if = "is_true"
    )]
    pub save: bool,
}

impl Payload for ImagePayload {
    fn validate(&self) -> Result<(), Invalid> {
        prompt(&self.prompt, "prompt")?;
        short(&self.model, "model", 100)?;
        short(&self.size, "size", 20)?;
        short(&self.aspect_ratio, "aspect_ratio", 10)?;
        short(&self.quality, "quality", 20)?;
        short(&self.output_format, "output_format", 10)?;
        short(&self.negative_prompt, "negative_prompt", 10_000)?;
        image_url(&self.image_url, "image_url")?;
        if let Some(n) = self.n
            && !(1..=MAX_IMAGES).contains(&n)
        {
            return Err(Invalid(format!("n must be 1 to {MAX_IMAGES}")));
        }
        Ok(())
    }
}

/// One point of a motion-brush trajectory, in pixels of the source image.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Point {
    /// From the left.
    pub x: i32,
    /// From the top.
    pub y: i32,
}

/// `media.video.generate`: a video from a prompt, or from an image and a prompt.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VideoPayload {
    /// What happens in the video.
    #[schema(max_length = 32000)]
    pub prompt: String,
    /// A model or alias of the media-worker's registry (`veo-3.1-fast`, `sora-2`, `kling-v2-1`,
    /// ...); the worker's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 100)]
    pub model: Option<String>,
    /// Length in seconds, one the model offers (Sora 4, 8, 12; Veo 4, 6, 8; KlingAI 5, 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<u32>,
    /// `16:9`, `9:16` (and `1:1` for KlingAI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 10)]
    pub aspect_ratio: Option<String>,
    /// `720p` or `1080p` (Veo), or Sora's `WIDTHxHEIGHT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 20)]
    pub resolution: Option<String>,
    /// The first frame (image-to-video): an http(s) URL the worker fetches, or a `data:` URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    /// What the video should not show (Veo, KlingAI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 2500)]
    pub negative_prompt: Option<String>,
    /// KlingAI's `std` or `pro`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 10)]
    pub mode: Option<String>,
    /// KlingAI's camera control: `{type, config?: {horizontal, vertical, pan, tilt, roll,
    /// zoom}}` (a preset `type` such as `forward_up`, or `simple` with one non-zero axis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub camera_control: Option<serde_json::Value>,
    /// KlingAI's motion brush: trajectories (of at most 77 points each) along which the
    /// area of `mask_url` moves; image-to-video only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trajectories: Vec<Vec<Point>>,
    /// The motion brush's mask: an image of the source's size whose painted area follows the
    /// trajectories (an http(s) URL or a `data:` URI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_url: Option<String>,
}

fn video_common(
    prompt_text: Option<&str>,
    negative: &Option<String>,
    model: &Option<String>,
) -> Result<(), Invalid> {
    if let Some(p) = prompt_text {
        prompt(p, "prompt")?;
    }
    short(model, "model", 100)?;
    short(negative, "negative_prompt", 2500)
}

impl Payload for VideoPayload {
    fn validate(&self) -> Result<(), Invalid> {
        video_common(Some(&self.prompt), &self.negative_prompt, &self.model)?;
        short(&self.aspect_ratio, "aspect_ratio", 10)?;
        short(&self.resolution, "resolution", 20)?;
        short(&self.mode, "mode", 10)?;
        image_url(&self.image_url, "image_url")?;
        if let Some(d) = self.duration_secs
            && !(1..=60).contains(&d)
        {
            return Err(Invalid("duration_secs must be 1 to 60".into()));
        }
        if let Some(camera) = &self.camera_control
            && !camera.is_object()
        {
            return Err(Invalid("camera_control must be an object".into()));
        }
        image_url(&self.mask_url, "mask_url")?;
        if !self.trajectories.is_empty() && (self.image_url.is_none() || self.mask_url.is_none()) {
            return Err(Invalid(
                "trajectories (motion brush) need image_url and mask_url: they move the masked \
                 area of an image"
                    .into(),
            ));
        }
        if self.mask_url.is_some() && self.trajectories.is_empty() {
            return Err(Invalid("mask_url goes with trajectories".into()));
        }
        if self.trajectories.len() > 6 {
            return Err(Invalid("at most 6 trajectories".into()));
        }
        for (i, t) in self.trajectories.iter().enumerate() {
            if t.len() < 2 || t.len() > MAX_TRAJECTORY_POINTS {
                return Err(Invalid(format!(
                    "trajectories[{i}] must have 2 to {MAX_TRAJECTORY_POINTS} points"
                )));
            }
        }
        Ok(())
    }
}

/// `media.video.extend`: continues a video that a provider made earlier (KlingAI), by the id
/// the provider gave it (`data.video.provider_video_id` of the earlier answer).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ExtendPayload {
    /// The provider's id of the video to continue.
    #[schema(max_length = 200)]
    pub video_id: String,
    /// What happens next; the video goes on as it was when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 32000)]
    pub prompt: Option<String>,
    /// The model the video was made with (a KlingAI model); the registry's KlingAI default when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 100)]
    pub model: Option<String>,
    /// What the continuation should not show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 2500)]
    pub negative_prompt: Option<String>,
}

impl Payload for ExtendPayload {
    fn validate(&self) -> Result<(), Invalid> {
        video_common(self.prompt.as_deref(), &self.negative_prompt, &self.model)?;
        if self.video_id.trim().is_empty() {
            return Err(Invalid("video_id must not be empty".into()));
        }
        crate::text::check("video_id", &self.video_id, 200).map_err(Invalid)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_image_request_needs_a_prompt_and_sane_counts() {
        let ok = ImagePayload::parse(&json!({"prompt": "a cat"})).unwrap();
        assert!(ok.save, "images are stored unless asked otherwise");
        let inline = ImagePayload::parse(&json!({"prompt": "a cat", "save_to_db": false})).unwrap();
        assert!(!inline.save);
        for bad in [
            json!({"prompt": " "}),
            json!({"prompt": "a", "n": 0}),
            json!({"prompt": "a", "n": 11}),
            json!({"prompt": "a", "image_url": "file:///etc/passwd"}),
            json!({"prompt": "a", "model": ""}),
            json!({"prompt": "x".repeat(MAX_PROMPT_CHARS + 1)}),
        ] {
            assert!(ImagePayload::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn motion_brush_needs_an_image_and_at_most_77_points() {
        let points = |n: usize| -> Vec<serde_json::Value> {
            (0..n).map(|i| json!({"x": i, "y": i})).collect()
        };
        let ok = json!({"prompt": "p", "image_url": "https://x/i.png",
            "mask_url": "https://x/m.png", "trajectories": [points(77)]});
        assert!(VideoPayload::parse(&ok).is_ok());
        let too_many = json!({"prompt": "p", "image_url": "https://x/i.png",
            "mask_url": "https://x/m.png", "trajectories": [points(78)]});
        let e = VideoPayload::parse(&too_many).unwrap_err();
        assert!(e.0.contains("77"), "{e}");
        let no_image = json!({"prompt": "p", "trajectories": [points(3)]});
        assert!(VideoPayload::parse(&no_image).is_err());
    }

    #[test]
    fn an_extension_names_the_video() {
        assert!(ExtendPayload::parse(&json!({"video_id": "v1"})).is_ok());
        assert!(ExtendPayload::parse(&json!({"video_id": " "})).is_err());
        assert!(ExtendPayload::parse(&json!({})).is_err());
    }
}
