//! Image generation on the Gemini API: Gemini's native image models through `generateContent`
//! (or `streamGenerateContent`), and Imagen through `:predict`.
//!
//! Wire format from the Gemini API's image generation guide
//! (<https://ai.google.dev/gemini-api/docs/image-generation>), its Imagen guide
//! (<https://ai.google.dev/gemini-api/docs/imagen>) and google-genai's `GeneratedImage`
//! (`raiFilteredReason`):
//!
//! - Gemini (`gemini-2.5-flash-image`, `gemini-3-pro-image-preview`, any `gemini-…image…`
//!   model): a request whose `generationConfig.responseModalities` holds `IMAGE`, or that names
//!   no modalities (these models answer text and image by default), is answered with a short
//!   text part (unless only `IMAGE` was asked for) and an `inlineData` part holding a PNG,
//!   `finishReason: "STOP"` and `usageMetadata` (1290 image tokens for 2.5 Flash; 1120, or 2000
//!   at 4K, for 3 Pro). `generationConfig.imageConfig.aspectRatio` is one of `1:1` (default),
//!   `2:3`, `3:2`, `3:4`, `4:3`, `4:5`, `5:4`, `9:16`, `16:9`, `21:9`, and `imageSize` `1K`
//!   (default), `2K` or `4K` (upper-case K); sizes are the guide's tables (2.5 Flash: 16:9 is
//!   1344×768; 3 Pro: 16:9 is 1376×768 at 1K, twice and four times that at 2K and 4K). A model
//!   that does not make images refuses `IMAGE` (400 `INVALID_ARGUMENT`). The safety system's
//!   refusal (`Behaviour::ContentFiltered`) is a candidate with `finishReason: "IMAGE_SAFETY"`, a
//!   `finishMessage` and no content.
//! - Imagen (`imagen-4.0-generate-001`, `-ultra-`, `-fast-`, `imagen-3.0-generate-002`):
//!   `POST /v1beta/models/{model}:predict` with `{"instances": [{"prompt"}], "parameters":
//!   {"sampleCount": 1–4 (default 4; Ultra 1), "aspectRatio": "1:1" | "3:4" | "4:3" | "9:16" |
//!   "16:9", "imageSize": "1K" | "2K" (not Fast), "personGeneration", "outputOptions":
//!   {"mimeType": "image/png" | "image/jpeg"}, "includeRaiReason"}}` → `{"predictions":
//!   [{"mimeType", "bytesBase64Encoded"}]}` (1K: 1:1 1024×1024, 3:4 896×1280, 4:3 1280×896,
//!   9:16 768×1408, 16:9 1408×768). Filtered images are left out: with `includeRaiReason` a
//!   prediction holds only `raiFilteredReason`, else the answer is `{}`.
//!
//! Both need the key (`x-goog-api-key`, or `?key=`): without one the API answers 403
//! `PERMISSION_DENIED`.

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde_json::{Value, json};

use super::request::{at, field};
use super::{
    Framer, Framing, JSON, error_event, error_response, failure_response, invalid_argument,
    malformed_complete, response_id,
};
use crate::config::Behaviour;
use crate::content::word_count;
use crate::engine::{self, Failure, Turn};
use crate::image::{self, ImageFormat, ImageTurn, NOT_BASE64, Picture, Prepared};
use crate::json::to_json;
use crate::record::{Incoming, WireFormat};
use crate::server::Shared;

const NO_KEY: &str = "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.";
/// Text the model says beside its image.
const CAPTION: &str = "Here is the image you asked for.";
const FINISH_MESSAGE: &str = "Unable to show the generated image. The image was filtered out because it violated Google's Generative AI Prohibited Use policy. You will not be charged for blocked images. Try rephrasing the prompt. If you think this was an error, send feedback.";
const RAI_REASON: &str = "Your current safety filter threshold filtered out 1 generated images. You will not be charged for blocked images. Try rephrasing the prompt. If you think this was an error, send feedback. Support codes: 56562880";

/// Gemini 2.5 Flash Image's sizes (1K only).
const FLASH_SIZES: [(&str, (u32, u32)); 10] = [
    ("1:1", (1024, 1024)),
    ("2:3", (832, 1248)),
    ("3:2", (1248, 832)),
    ("3:4", (864, 1184)),
    ("4:3", (1184, 864)),
    ("4:5", (896, 1152)),
    ("5:4", (1152, 896)),
    ("9:16", (768, 1344)),
    ("16:9", (1344, 768)),
    ("21:9", (1536, 672)),
];
/// Gemini 3 Pro Image's sizes at 1K; 2K and 4K double and quadruple them.
const PRO_SIZES: [(&str, (u32, u32)); 10] = [
    ("1:1", (1024, 1024)),
    ("2:3", (848, 1264)),
    ("3:2", (1264, 848)),
    ("3:4", (896, 1200)),
    ("4:3", (1200, 896)),
    ("4:5", (928, 1152)),
    ("5:4", (1152, 928)),
    ("9:16", (768, 1376)),
    ("16:9", (1376, 768)),
    ("21:9", (1584, 672)),
];
/// Imagen's sizes at 1K; 2K doubles them.
const IMAGEN_SIZES: [(&str, (u32, u32)); 5] = [
    ("1:1", (1024, 1024)),
    ("3:4", (896, 1280)),
    ("4:3", (1280, 896)),
    ("9:16", (768, 1408)),
    ("16:9", (1408, 768)),
];

/// The key a request carried: `x-goog-api-key`, else the `key` query parameter.
fn api_key(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    let query = Query::<HashMap<String, String>>::try_from_uri(uri)
        .map(|Query(q)| q)
        .unwrap_or_default();
    headers
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| query.get("key").cloned())
        .filter(|k| !k.is_empty())
}

fn no_key() -> Response {
    error_response(
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
        NO_KEY.to_owned(),
        Vec::new(),
    )
}

fn is_image_model(model: &str) -> bool {
    model.starts_with("gemini") && model.contains("image")
}

fn is_flash(model: &str) -> bool {
    model.starts_with("gemini-2.5-flash-image") || model.starts_with("gemini-2.0-flash")
}

/// What a `generateContent` request asks of an image model.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ImageAsk {
    /// A text part comes before the image.
    text: bool,
    width: u32,
    height: u32,
    /// Output tokens of the image.
    tokens: u64,
}

/// Whether (and how) the request asks for an image; `Err` is the `INVALID_ARGUMENT` message.
pub(super) fn requested(model: &str, body: &Value) -> Result<Option<ImageAsk>, String> {
    let config = body
        .as_object()
        .and_then(|o| field(o, "generationConfig", "generation_config"));
    let modalities: Option<Vec<String>> = config
        .and_then(|c| at(c, "responseModalities", "response_modalities"))
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .filter_map(Value::as_str)
                .map(str::to_ascii_uppercase)
                .collect()
        });
    let asks_image = modalities
        .as_ref()
        .is_some_and(|m| m.iter().any(|m| m == "IMAGE"));
    if asks_image && !is_image_model(model) {
        return Err(format!(
            "Model does not support the requested response modalities: image. models/{model} only answers with text."
        ));
    }
    let image = asks_image || (modalities.is_none() && is_image_model(model));
    if !image {
        return Ok(None);
    }
    let text = modalities
        .as_ref()
        .is_none_or(|m| m.iter().any(|m| m == "TEXT"));
    let image_config = config.and_then(|c| at(c, "imageConfig", "image_config"));
    let ratio = match image_config.and_then(|c| at(c, "aspectRatio", "aspect_ratio")) {
        None => "1:1",
        Some(Value::String(ratio)) => ratio.as_str(),
        Some(_) => {
            return Err(
                "Invalid value at 'generation_config.image_config.aspect_ratio' (TYPE_STRING)."
                    .to_owned(),
            );
        }
    };
    let size = match image_config.and_then(|c| at(c, "imageSize", "image_size")) {
        None => "1K",
        Some(Value::String(size)) if ["1K", "2K", "4K"].contains(&size.as_str()) => size.as_str(),
        Some(other) => {
            return Err(format!(
                "Unsupported image size: {other}. Supported sizes are 1K, 2K and 4K (upper-case K)."
            ));
        }
    };
    let table = if is_flash(model) {
        &FLASH_SIZES
    } else {
        &PRO_SIZES
    };
    let Some(&(_, (width, height))) = table.iter().find(|(r, _)| *r == ratio) else {
        let supported = table.iter().map(|(r, _)| *r).collect::<Vec<_>>().join(", ");
        return Err(format!(
            "Unsupported aspect ratio: {ratio}. Supported aspect ratios are {supported}."
        ));
    };
    let (scale, tokens) = match (is_flash(model), size) {
        (true, _) => (1, 1290),
        (false, "2K") => (2, 1120),
        (false, "4K") => (4, 2000),
        (false, _) => (1, 1120),
    };
    Ok(Some(ImageAsk {
        text,
        width: width * scale,
        height: height * scale,
        tokens,
    }))
}

/// Answers a `generateContent` request that asks for an image.
pub(super) async fn generate(
    shared: &Shared,
    model: &str,
    framing: Option<Framing>,
    ask: ImageAsk,
    uri: &Uri,
    headers: &HeaderMap,
    body: Value,
) -> Response {
    let Some(key) = api_key(headers, uri) else {
        return no_key();
    };
    let prompt_tokens = super::request::parse(&body).map_or(0, |r| r.prompt_tokens);
    let prompt = prompt_of(&body);
    let incoming = Incoming::new(WireFormat::GeminiImage, uri, Some(key), body).with_text(&prompt);
    let (behaviour, mut guard) = shared.begin(incoming);
    tracing::debug!(?behaviour, model, ?ask, "gemini image");
    if let Some(failure) = engine::upfront_failure(&behaviour) {
        guard.finish();
        return failure_response(failure, model);
    }
    let filtered = behaviour == Behaviour::ContentFiltered;
    let data = if filtered {
        String::new()
    } else {
        let bytes = image::render(
            ImageFormat::Png,
            ask.width,
            ask.height,
            Picture::Gradient(image::seed_of(&prompt)),
        )
        .await;
        BASE64.encode(&bytes)
    };
    let turn = GeminiImageTurn {
        model: model.to_owned(),
        response_id: response_id(),
        framer: Framer::new(framing),
        ask,
        prompt_tokens,
        data,
        filtered,
    };
    engine::respond(
        turn,
        &behaviour,
        engine::Timing::from(shared.config()),
        guard,
        shared.stop_token(),
    )
    .await
}

/// Every text part of every content, joined: what the image is drawn from.
fn prompt_of(body: &Value) -> String {
    body.get("contents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("parts").and_then(Value::as_array))
        .flatten()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A part of the reply.
#[derive(Clone, Copy)]
enum Piece {
    Caption,
    Image,
}

/// One image reply: the caption (if asked for) and the image, each in its own chunk when
/// streamed; the image in one piece, as Gemini sends it.
struct GeminiImageTurn {
    model: String,
    response_id: String,
    framer: Framer,
    ask: ImageAsk,
    prompt_tokens: u64,
    /// The image, base64.
    data: String,
    /// Refused by the safety system: no parts, `IMAGE_SAFETY`.
    filtered: bool,
}

impl GeminiImageTurn {
    fn pieces(&self) -> Vec<Piece> {
        if self.filtered {
            return Vec::new();
        }
        let mut pieces = Vec::new();
        if self.ask.text {
            pieces.push(Piece::Caption);
        }
        pieces.push(Piece::Image);
        pieces
    }

    fn part(&self, piece: Piece, bad_data: bool) -> Value {
        match piece {
            Piece::Caption => json!({ "text": CAPTION }),
            Piece::Image => json!({
                "inlineData": {
                    "mimeType": "image/png",
                    "data": if bad_data { NOT_BASE64 } else { self.data.as_str() },
                }
            }),
        }
    }

    /// Token counts once `pieces` are out.
    fn usage(&self, pieces: &[Piece]) -> Value {
        let mut text = 0;
        let mut image = 0;
        for piece in pieces {
            match piece {
                Piece::Caption => text += word_count(CAPTION),
                Piece::Image => image += self.ask.tokens,
            }
        }
        let candidates = text + image;
        let mut usage = json!({
            "promptTokenCount": self.prompt_tokens,
            "totalTokenCount": self.prompt_tokens + candidates,
            "promptTokensDetails": [{ "modality": "TEXT", "tokenCount": self.prompt_tokens }],
        });
        if candidates > 0 {
            usage["candidatesTokenCount"] = json!(candidates);
        }
        if image > 0 {
            usage["candidatesTokensDetails"] =
                json!([{ "modality": "IMAGE", "tokenCount": image }]);
        }
        usage
    }

    /// One response: `parts` with `finish_reason`, usage counting `counted`.
    fn response(
        &self,
        parts: Vec<Value>,
        finish_reason: Option<&str>,
        counted: &[Piece],
    ) -> String {
        let mut candidate = json!({ "content": { "parts": parts, "role": "model" }, "index": 0 });
        if let Some(reason) = finish_reason {
            candidate["finishReason"] = json!(reason);
        }
        to_json(&json!({
            "candidates": [candidate],
            "usageMetadata": self.usage(counted),
            "modelVersion": self.model,
            "responseId": self.response_id,
        }))
    }

    /// The safety system's answer: no content, `IMAGE_SAFETY`.
    fn refusal(&self) -> String {
        to_json(&json!({
            "candidates": [{
                "finishReason": "IMAGE_SAFETY",
                "finishMessage": FINISH_MESSAGE,
                "index": 0,
            }],
            "usageMetadata": self.usage(&[]),
            "modelVersion": self.model,
            "responseId": self.response_id,
        }))
    }

    fn whole(&self, bad_data: bool) -> Response {
        let pieces = self.pieces();
        let json = if self.filtered {
            self.refusal()
        } else {
            let parts = pieces.iter().map(|p| self.part(*p, bad_data)).collect();
            self.response(parts, Some("STOP"), &pieces)
        };
        let mut response = json.into_response();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
        response
    }

    fn chunk(&mut self, index: usize, finish_reason: Option<&str>, bad_data: bool) -> Bytes {
        let pieces = self.pieces();
        let counted = pieces.get(..=index).unwrap_or(&pieces);
        let parts = pieces
            .get(index)
            .map(|p| vec![self.part(*p, bad_data)])
            .unwrap_or_default();
        let json = self.response(parts, finish_reason, counted);
        self.framer.element(&json)
    }
}

impl Turn for GeminiImageTurn {
    fn streaming(&self) -> bool {
        self.framer.streaming()
    }

    fn units(&self) -> usize {
        self.pieces().len()
    }

    fn opening(&mut self) -> Vec<Bytes> {
        self.framer.opening()
    }

    fn unit(&mut self, index: usize) -> Bytes {
        self.chunk(index, None, false)
    }

    fn final_unit(&mut self, index: usize) -> Bytes {
        self.chunk(index, Some("STOP"), false)
    }

    fn closing(&mut self) -> Vec<Bytes> {
        let mut events = Vec::new();
        if self.filtered {
            let refusal = self.refusal();
            events.push(self.framer.element(&refusal));
        }
        events.extend(self.framer.end_of_array());
        events
    }

    fn malformed(&mut self) -> Vec<Bytes> {
        let finish = self.response(vec![json!({ "text": "" })], Some("STOP"), &self.pieces());
        let mut events = vec![
            self.framer.element("{not json"),
            self.framer.element(&finish),
        ];
        events.extend(self.framer.end_of_array());
        events
    }

    /// The image part with data that is not base64, ending the reply.
    fn bad_audio(&mut self) -> Vec<Bytes> {
        let pieces = self.pieces();
        let json = self.response(vec![self.part(Piece::Image, true)], Some("STOP"), &pieces);
        let mut events = vec![self.framer.element(&json)];
        events.extend(self.framer.end_of_array());
        events
    }

    fn error_event(&mut self) -> Vec<Bytes> {
        error_event(&mut self.framer)
    }

    fn stream_content_type(&self) -> &'static str {
        self.framer.content_type()
    }

    fn complete(&self) -> Response {
        self.whole(false)
    }

    fn malformed_complete(&self) -> Response {
        malformed_complete()
    }

    fn bad_audio_complete(&self) -> Response {
        self.whole(true)
    }

    fn failure(&self, failure: Failure) -> Response {
        failure_response(failure, &self.model)
    }
}

/// An Imagen request the simulator accepted.
#[derive(Debug)]
struct Predict {
    prompt: String,
    count: usize,
    width: u32,
    height: u32,
    format: ImageFormat,
    rai_reason: bool,
}

impl Predict {
    fn parse(model: &str, body: &Value) -> Result<Self, String> {
        let prompt = body
            .get("instances")
            .and_then(Value::as_array)
            .and_then(|i| i.first())
            .and_then(|i| i.get("prompt"))
            .and_then(Value::as_str)
            .filter(|p| !p.trim().is_empty())
            .ok_or("* instances[0].prompt: a non-empty prompt is required\n")?
            .to_owned();
        let parameters = body.get("parameters").unwrap_or(&Value::Null);
        let ultra = model.contains("ultra");
        let count = match parameters.get("sampleCount") {
            None | Some(Value::Null) => {
                if ultra {
                    1
                } else {
                    4
                }
            }
            Some(count) => match count.as_u64() {
                Some(n @ 1..=4) if !ultra || n == 1 => n as usize,
                _ if ultra => {
                    return Err(format!(
                        "{model} generates one image at a time: sampleCount must be 1."
                    ));
                }
                _ => return Err("sampleCount must be between 1 and 4.".to_owned()),
            },
        };
        let ratio = parameters
            .get("aspectRatio")
            .and_then(Value::as_str)
            .unwrap_or("1:1");
        let Some(&(_, (width, height))) = IMAGEN_SIZES.iter().find(|(r, _)| *r == ratio) else {
            return Err(format!(
                "Unsupported aspect ratio: {ratio}. Supported aspect ratios are 1:1, 3:4, 4:3, 9:16 and 16:9."
            ));
        };
        let scale = match parameters.get("imageSize").and_then(Value::as_str) {
            None | Some("1K") => 1,
            Some("2K") if !model.contains("fast") => 2,
            Some("2K") => return Err(format!("{model} does not support imageSize 2K.")),
            Some(other) => return Err(format!("Unsupported imageSize: {other}. Use 1K or 2K.")),
        };
        if let Some(person) = parameters.get("personGeneration").and_then(Value::as_str)
            && !["dont_allow", "allow_adult", "allow_all"].contains(&person)
        {
            return Err(format!(
                "Unsupported personGeneration: {person}. Use dont_allow, allow_adult or allow_all."
            ));
        }
        let format = match parameters
            .pointer("/outputOptions/mimeType")
            .and_then(Value::as_str)
        {
            None | Some("image/png") => ImageFormat::Png,
            Some("image/jpeg") => ImageFormat::Jpeg,
            Some(other) => {
                return Err(format!(
                    "Unsupported output mime type: {other}. Use image/png or image/jpeg."
                ));
            }
        };
        Ok(Self {
            prompt,
            count,
            width: width * scale,
            height: height * scale,
            format,
            rai_reason: parameters
                .get("includeRaiReason")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}

/// `POST /v1beta/models/{model}:predict` (Imagen).
pub(super) async fn predict(
    shared: &Shared,
    model: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let Some(key) = api_key(headers, uri) else {
        return no_key();
    };
    if !model.starts_with("imagen-") {
        return error_response(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!(
                "models/{model} is not found for API version v1beta, or is not supported for predict. Call ListModels to see the list of available models and their supported methods."
            ),
            Vec::new(),
        );
    }
    let body: Value = match serde_json::from_slice(body) {
        Ok(body) => body,
        Err(err) => return invalid_argument(format!("Invalid JSON payload received. {err}")),
    };
    let request = match Predict::parse(model, &body) {
        Ok(request) => request,
        Err(message) => return invalid_argument(message),
    };
    let incoming =
        Incoming::new(WireFormat::Imagen, uri, Some(key), body).with_text(&request.prompt);
    let (behaviour, mut guard) = shared.begin(incoming);
    tracing::debug!(?behaviour, model, ?request, "imagen");
    if let Some(failure) = engine::upfront_failure(&behaviour) {
        guard.finish();
        return failure_response(failure, model);
    }
    let model = model.to_owned();
    let failure = Box::new(move |failure| failure_response(failure, &model));
    if behaviour == Behaviour::ContentFiltered {
        // Filtered images are left out; their reasons only when asked for.
        let reply = if request.rai_reason {
            let predictions: Vec<Value> = (0..request.count)
                .map(|_| json!({ "raiFilteredReason": RAI_REASON }))
                .collect();
            json!({ "predictions": predictions })
        } else {
            json!({})
        };
        let turn = ImageTurn {
            images: 0,
            reply: google_json(&reply),
            bad_data: None,
            failure,
        };
        return image::respond(shared, turn, &behaviour, guard).await;
    }
    let mut images = Vec::with_capacity(request.count);
    for index in 0..request.count as u64 {
        let seed = image::seed_of(&request.prompt) ^ index;
        let picture = Picture::Gradient(seed);
        images.push(image::render(request.format, request.width, request.height, picture).await);
    }
    let body = |bad: bool| {
        let predictions: Vec<Value> = images
            .iter()
            .map(|bytes| {
                let data = if bad {
                    NOT_BASE64.to_owned()
                } else {
                    BASE64.encode(bytes)
                };
                json!({ "mimeType": request.format.mime_type(), "bytesBase64Encoded": data })
            })
            .collect();
        google_json(&json!({ "predictions": predictions }))
    };
    let turn = ImageTurn {
        images: request.count,
        reply: body(false),
        bad_data: Some(body(true)),
        failure,
    };
    image::respond(shared, turn, &behaviour, guard).await
}

fn google_json(value: &Value) -> Prepared {
    Prepared::new(JSON, to_json(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(model: &str, config: Value) -> Result<Option<ImageAsk>, String> {
        requested(
            model,
            &json!({"contents": [{"parts": [{"text": "a fox"}]}], "generationConfig": config}),
        )
    }

    #[test]
    fn image_models_answer_with_images_by_default() {
        let default = ask("gemini-2.5-flash-image", json!({})).unwrap().unwrap();
        assert_eq!(
            (default.width, default.height, default.text),
            (1024, 1024, true)
        );
        let only = ask(
            "gemini-2.5-flash-image",
            json!({"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "16:9"}}),
        )
        .unwrap()
        .unwrap();
        assert_eq!((only.width, only.height, only.text), (1344, 768, false));
        let text_only = ask(
            "gemini-2.5-flash-image",
            json!({"responseModalities": ["TEXT"]}),
        );
        assert_eq!(text_only, Ok(None));
        assert_eq!(ask("gemini-2.5-flash", json!({})), Ok(None));
        assert!(
            ask(
                "gemini-2.5-flash",
                json!({"responseModalities": ["TEXT", "IMAGE"]})
            )
            .is_err()
        );
    }

    #[test]
    fn pro_sizes_scale_with_image_size() {
        let config = |size: &str| json!({"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "16:9", "imageSize": size}});
        let one = ask("gemini-3-pro-image-preview", config("1K"))
            .unwrap()
            .unwrap();
        assert_eq!((one.width, one.height, one.tokens), (1376, 768, 1120));
        let four = ask("gemini-3-pro-image-preview", config("4K"))
            .unwrap()
            .unwrap();
        assert_eq!((four.width, four.height, four.tokens), (5504, 3072, 2000));
        assert!(ask("gemini-3-pro-image-preview", config("4k")).is_err());
        let odd = json!({"imageConfig": {"aspectRatio": "7:3"}});
        assert!(ask("gemini-3-pro-image-preview", odd).is_err());
    }

    #[test]
    fn imagen_parameters() {
        let body = |parameters: Value| json!({"instances": [{"prompt": "a fox"}], "parameters": parameters});
        let default = Predict::parse("imagen-4.0-generate-001", &body(json!({}))).unwrap();
        assert_eq!(
            (default.count, default.width, default.height),
            (4, 1024, 1024)
        );
        let wide = Predict::parse(
            "imagen-4.0-generate-001",
            &body(json!({"sampleCount": 1, "aspectRatio": "16:9", "imageSize": "2K"})),
        )
        .unwrap();
        assert_eq!((wide.count, wide.width, wide.height), (1, 2816, 1536));
        assert!(
            Predict::parse("imagen-4.0-generate-001", &body(json!({"sampleCount": 5}))).is_err()
        );
        assert!(
            Predict::parse(
                "imagen-4.0-ultra-generate-001",
                &body(json!({"sampleCount": 2}))
            )
            .is_err()
        );
        assert!(
            Predict::parse(
                "imagen-4.0-fast-generate-001",
                &body(json!({"imageSize": "2K"}))
            )
            .is_err()
        );
        assert!(
            Predict::parse(
                "imagen-4.0-generate-001",
                &body(json!({"aspectRatio": "2:3"}))
            )
            .is_err()
        );
        assert!(Predict::parse("imagen-4.0-generate-001", &json!({"instances": []})).is_err());
    }
}
