//! Real images for the image generation APIs, and the simulator's own file host.
//!
//! Every generated image is a smooth gradient between three colours derived from a seed (the
//! prompt's hash, or the seed the request states), so different prompts give different images
//! and a client can decode, measure and display what it received. Gradients compress well in PNG
//! (each row differs from the one above by the same three bytes, which the `Up` filter turns into
//! a repeating triple; see `png`): about 25 KiB per megapixel (40 KiB at 1536×1024, 320 KiB at
//! 4096×4096), written in milliseconds even by an unoptimised build. JPEGs go through
//! `jpeg-encoder` (about 0.3 s per megapixel unoptimised, milliseconds optimised). Formats
//! that would need an encoder the simulator does not have (WebP) are refused by each API with a
//! 400 `unsupported_in_simulator`, as the audio formats are.
//!
//! APIs that answer with a URL (OpenAI's `response_format: "url"`, xAI, a Flux task's `sample`)
//! point it at `GET /_sim/files/{id}` on the simulator, which serves the bytes from memory; the
//! store keeps the newest [`MAX_FILES`] files (and at most [`MAX_STORED_BYTES`]), as a real URL
//! expires.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{Path, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt as _;

use crate::config::Behaviour;
use crate::content::new_id;
use crate::engine::{self, Failure, Turn};
use crate::json::to_json;
use crate::record::{Incoming, ResponseGuard, WireFormat};
use crate::server::Shared;

mod png;

/// Files kept for `GET /_sim/files/{id}`; older ones are forgotten, as an expired URL is.
pub(crate) const MAX_FILES: usize = 256;
/// Bytes kept for `GET /_sim/files/{id}` at most.
pub(crate) const MAX_STORED_BYTES: usize = 256 * 1024 * 1024;
/// JPEG quality of every JPEG the simulator writes.
const JPEG_QUALITY: u8 = 80;

/// An encoding the simulator can write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ImageFormat {
    Png,
    Jpeg,
}

impl ImageFormat {
    pub(crate) fn mime_type(self) -> &'static str {
        match self {
            ImageFormat::Png => "image/png",
            ImageFormat::Jpeg => "image/jpeg",
        }
    }
}

/// What an image shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Picture {
    /// A gradient whose colours derive from the seed.
    Gradient(u64),
    /// One flat grey: what is left of an image a provider blurred for its safety system.
    Blurred,
}

/// A PNG (8-bit RGB) of `width`×`height` showing the gradient of `seed`.
pub(crate) fn png(width: u32, height: u32, seed: u64) -> Vec<u8> {
    png::encode(&Gradient::new(width, height, Picture::Gradient(seed)))
}

/// A baseline JPEG of `width`×`height` showing the gradient of `seed`; empty if a side is over
/// the 65 535 pixels JPEG allows, which every API's validation rules out first.
pub(crate) fn jpeg(width: u32, height: u32, seed: u64) -> Vec<u8> {
    encode_jpeg(Gradient::new(width, height, Picture::Gradient(seed)))
}

/// `picture` in `format`.
pub(crate) fn encode(format: ImageFormat, width: u32, height: u32, picture: Picture) -> Vec<u8> {
    match (format, picture) {
        (ImageFormat::Png, Picture::Gradient(seed)) => png(width, height, seed),
        (ImageFormat::Jpeg, Picture::Gradient(seed)) => jpeg(width, height, seed),
        (ImageFormat::Png, Picture::Blurred) => {
            png::encode(&Gradient::new(width, height, Picture::Blurred))
        }
        (ImageFormat::Jpeg, Picture::Blurred) => {
            encode_jpeg(Gradient::new(width, height, Picture::Blurred))
        }
    }
}

/// [`encode`] on a blocking thread, so a large image does not hold up other replies.
pub(crate) async fn render(
    format: ImageFormat,
    width: u32,
    height: u32,
    picture: Picture,
) -> Bytes {
    let task = tokio::task::spawn_blocking(move || encode(format, width, height, picture));
    match task.await {
        Ok(bytes) => Bytes::from(bytes),
        Err(err) => {
            tracing::error!(%err, "image encoding task failed");
            Bytes::new()
        }
    }
}

/// A seed for `text`: FNV-1a of its bytes, so the same prompt always gives the same image.
pub(crate) fn seed_of(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Pixels of a picture, computed row by row so no raw frame is ever held in memory.
struct Gradient {
    width: u32,
    height: u32,
    /// Per channel, the horizontal ramp's left and right values (0..=127).
    across: [[u16; 3]; 2],
    /// Per channel, the vertical ramp's top and bottom values (0..=127).
    down: [[u16; 3]; 2],
}

impl Gradient {
    fn new(width: u32, height: u32, picture: Picture) -> Self {
        let (across, down) = match picture {
            Picture::Gradient(seed) => {
                // Colours from the seed's bits, mixed again so that close seeds differ.
                let mixed = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (seed >> 29);
                let half = |i: u32| ((mixed >> (i * 7)) & 0x7f) as u16;
                (
                    [[half(0), half(1), half(2)], [half(3), half(4), half(5)]],
                    [[half(6), half(7), half(8)], [0, 0, 0]],
                )
            }
            Picture::Blurred => ([[64; 3]; 2], [[64; 3]; 2]),
        };
        Self {
            width,
            height,
            across,
            down,
        }
    }

    /// The left-to-right ramp: the top row before the vertical ramp is added.
    fn base_row(&self) -> Vec<u8> {
        let [left, right] = self.across;
        let width = i64::from(self.width.max(1));
        let mut row = Vec::with_capacity(self.width as usize * 3);
        for x in 0..i64::from(self.width) {
            for c in 0..3 {
                let (from, to) = (i64::from(left[c]), i64::from(right[c]));
                row.push(u8::try_from(from + (to - from) * x / width).unwrap_or(u8::MAX));
            }
        }
        row
    }

    /// The top-to-bottom ramp's value for each channel on row `y`.
    fn vertical(&self, y: u32) -> [u8; 3] {
        let [top, bottom] = self.down;
        let height = i64::from(self.height.max(1));
        std::array::from_fn(|c| {
            let (from, to) = (i64::from(top[c]), i64::from(bottom[c]));
            u8::try_from(from + (to - from) * i64::from(y) / height).unwrap_or(u8::MAX)
        })
    }

    /// Row `y` as RGB bytes into `row`, given the [`Gradient::base_row`]: each channel is the
    /// sum of a left-to-right and a top-to-bottom ramp of at most 127 each, so it never clips
    /// and every row differs from the one above by the same three bytes.
    fn row(&self, base: &[u8], y: u32, row: &mut Vec<u8>) {
        let vertical = self.vertical(y);
        row.clear();
        row.extend(base.chunks_exact(3).flat_map(|pixel| {
            [
                pixel[0].saturating_add(vertical[0]),
                pixel[1].saturating_add(vertical[1]),
                pixel[2].saturating_add(vertical[2]),
            ]
        }));
    }
}

/// Feeds the JPEG encoder YCbCr rows computed on the fly.
struct JpegRows {
    gradient: Gradient,
    base: Vec<u8>,
    width: u16,
    height: u16,
}

impl jpeg_encoder::ImageBuffer for JpegRows {
    fn get_jpeg_color_type(&self) -> jpeg_encoder::JpegColorType {
        jpeg_encoder::JpegColorType::Ycbcr
    }

    fn width(&self) -> u16 {
        self.width
    }

    fn height(&self) -> u16 {
        self.height
    }

    fn fill_buffers(&self, y: u16, buffers: &mut [Vec<u8>; 4]) {
        let mut row = Vec::with_capacity(self.base.len());
        self.gradient.row(&self.base, u32::from(y), &mut row);
        for pixel in row.chunks_exact(3) {
            if let [r, g, b] = *pixel {
                let (luma, cb, cr) = jpeg_encoder::rgb_to_ycbcr(r, g, b);
                buffers[0].push(luma);
                buffers[1].push(cb);
                buffers[2].push(cr);
            }
        }
    }
}

fn encode_jpeg(gradient: Gradient) -> Vec<u8> {
    let (Ok(width), Ok(height)) = (
        u16::try_from(gradient.width),
        u16::try_from(gradient.height),
    ) else {
        tracing::error!(gradient.width, gradient.height, "too large for a JPEG");
        return Vec::new();
    };
    let mut out = Vec::new();
    let encoder = jpeg_encoder::Encoder::new(&mut out, JPEG_QUALITY);
    let rows = JpegRows {
        base: gradient.base_row(),
        gradient,
        width,
        height,
    };
    if let Err(err) = encoder.encode_image(rows) {
        tracing::error!(%err, width, height, "could not encode a JPEG");
        return Vec::new();
    }
    out
}

/// A prepared HTTP response that can be produced from `&self` as often as asked.
#[derive(Clone)]
pub(crate) struct Prepared {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

impl Prepared {
    /// A 200 with `content_type` and `body`.
    pub(crate) fn new(content_type: &str, body: impl Into<Bytes>) -> Self {
        let mut prepared = Self {
            status: StatusCode::OK,
            headers: Vec::new(),
            body: body.into(),
        };
        if let Ok(value) = HeaderValue::from_str(content_type) {
            prepared.headers.push((CONTENT_TYPE, value));
        }
        prepared
    }

    /// A JSON 200 of `value`.
    pub(crate) fn json(value: &impl serde::Serialize) -> Self {
        Self::new("application/json", to_json(value))
    }

    /// Adds a header (a name and value that are not valid are left out).
    pub(crate) fn with_header(mut self, name: &'static str, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((HeaderName::from_static(name), value));
        }
        self
    }

    /// The same response with only the first half of its body, cut mid-value.
    pub(crate) fn truncated(&self) -> Self {
        let mut cut = self.clone();
        cut.body = self.body.slice(..self.body.len() / 2);
        cut
    }

    pub(crate) fn response(&self) -> Response {
        let mut response = (self.status, self.body.clone()).into_response();
        for (name, value) in &self.headers {
            response.headers_mut().insert(name, value.clone());
        }
        response
    }
}

/// A whole image reply (never streamed), played by the engine: the first-token delay stands for
/// the generation time, then `DropMidStream` cuts the connection, `MalformedLine` sends the
/// reply cut in half, `BadAudio` sends `bad_data` (image data that is not valid base64, where
/// the reply has base64), `ErrorEvent` the provider's "overloaded" error, and anything else the
/// reply. One unit per image.
pub(crate) struct ImageTurn {
    pub(crate) images: usize,
    pub(crate) reply: Prepared,
    pub(crate) bad_data: Option<Prepared>,
    /// The provider's error response for a failure.
    pub(crate) failure: Box<dyn Fn(Failure) -> Response + Send>,
}

impl Turn for ImageTurn {
    fn streaming(&self) -> bool {
        false
    }

    fn units(&self) -> usize {
        self.images
    }

    fn opening(&mut self) -> Vec<Bytes> {
        Vec::new()
    }

    fn unit(&mut self, _: usize) -> Bytes {
        Bytes::new()
    }

    fn closing(&mut self) -> Vec<Bytes> {
        Vec::new()
    }

    fn malformed(&mut self) -> Vec<Bytes> {
        Vec::new()
    }

    fn error_event(&mut self) -> Vec<Bytes> {
        Vec::new()
    }

    fn complete(&self) -> Response {
        self.reply.response()
    }

    fn malformed_complete(&self) -> Response {
        self.reply.truncated().response()
    }

    fn bad_audio_complete(&self) -> Response {
        self.bad_data
            .as_ref()
            .map_or_else(|| self.malformed_complete(), Prepared::response)
    }

    fn failure(&self, failure: Failure) -> Response {
        (self.failure)(failure)
    }
}

/// Plays `turn` for a request whose record `guard` holds, under `behaviour`.
pub(crate) async fn respond(
    shared: &Shared,
    turn: ImageTurn,
    behaviour: &Behaviour,
    guard: ResponseGuard,
) -> Response {
    engine::respond(
        turn,
        behaviour,
        engine::Timing::from(shared.config()),
        guard,
        shared.stop_token(),
    )
    .await
}

/// Data of an image part the `BadAudio` behaviour sends: not base64.
pub(crate) const NOT_BASE64: &str = "!!not base64!!";

/// Width and height of "W:H" scaled so the image holds about `pixels` pixels, each side a
/// multiple of `step`.
pub(crate) fn fit_ratio(ratio: (u32, u32), pixels: u64, step: u32) -> (u32, u32) {
    let (w, h) = (f64::from(ratio.0.max(1)), f64::from(ratio.1.max(1)));
    let height = (pixels as f64 * h / w).sqrt();
    let width = height * w / h;
    let round = |side: f64| {
        let steps = (side / f64::from(step)).round().max(1.0);
        (steps as u32).saturating_mul(step)
    };
    (round(width), round(height))
}

/// "W:H" as numbers.
pub(crate) fn parse_ratio(ratio: &str) -> Option<(u32, u32)> {
    let (w, h) = ratio.split_once(':')?;
    let (w, h) = (w.trim().parse().ok()?, h.trim().parse().ok()?);
    (w > 0 && h > 0).then_some((w, h))
}

/// A generated file the simulator serves.
struct StoredFile {
    id: String,
    content_type: &'static str,
    bytes: Bytes,
    /// The behaviour of the request that made the file, which its downloads follow.
    behaviour: Behaviour,
}

/// The files behind the URLs the image APIs hand out, newest last.
#[derive(Default)]
pub(crate) struct FileStore {
    files: Mutex<VecDeque<StoredFile>>,
}

impl FileStore {
    /// Keeps `bytes`, made by a request that had `behaviour`, and returns the id to serve them
    /// under.
    pub(crate) fn put(
        &self,
        content_type: &'static str,
        bytes: Bytes,
        behaviour: Behaviour,
    ) -> String {
        let id = new_id("file_");
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        files.push_back(StoredFile {
            id: id.clone(),
            content_type,
            bytes,
            behaviour,
        });
        let mut stored: usize = files.iter().map(|f| f.bytes.len()).sum();
        while files.len() > MAX_FILES || (stored > MAX_STORED_BYTES && files.len() > 1) {
            if let Some(old) = files.pop_front() {
                stored -= old.bytes.len();
            }
        }
        id
    }

    fn get(&self, id: &str) -> Option<(&'static str, Bytes, Behaviour)> {
        let files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        files
            .iter()
            .find(|f| f.id == id)
            .map(|f| (f.content_type, f.bytes.clone(), f.behaviour.clone()))
    }
}

/// Absolute URL of `path` on this simulator as the client reached it (its `Host` header), so a
/// client behind a hostname or a forwarded port can follow it.
pub(crate) fn absolute_url(headers: &HeaderMap, path: &str) -> String {
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or("127.0.0.1");
    format!("http://{host}{path}")
}

/// Stores `bytes` (made by a request that had `behaviour`) and returns the absolute URL that
/// serves them.
pub(crate) fn publish(
    shared: &Shared,
    headers: &HeaderMap,
    format: ImageFormat,
    bytes: Bytes,
    behaviour: &Behaviour,
) -> String {
    let id = shared
        .files()
        .put(format.mime_type(), bytes, behaviour.clone());
    absolute_url(headers, &format!("/_sim/files/{id}"))
}

/// `GET /_sim/files/{id}`: a file an image API handed out a URL for, recorded as
/// `file_download`.
///
/// A download takes no behaviour from the script: it follows the request that made the file,
/// as a job's downloads follow the job. `DownloadDrop { after_bytes }` there announces the whole
/// `Content-Length`, sends `after_bytes` bytes and cuts the connection; anything else serves
/// the file. An unknown or forgotten id is a 404, as an expired URL is.
pub(crate) async fn download(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    uri: Uri,
) -> Response {
    let Some((content_type, bytes, behaviour)) = shared.files().get(&id) else {
        return (
            StatusCode::NOT_FOUND,
            "The specified file does not exist or has expired.",
        )
            .into_response();
    };
    let incoming = Incoming::new(
        WireFormat::FileDownload,
        &uri,
        None,
        serde_json::Value::Null,
    );
    let mut guard = shared.follow_up(incoming, behaviour.clone());
    let cut_at = match behaviour {
        Behaviour::DownloadDrop { after_bytes } if after_bytes < bytes.len() => Some(after_bytes),
        _ => None,
    };
    let mut response = if let Some(after_bytes) = cut_at {
        // The simulator cuts the body itself, so the drop is not the client's.
        guard.abort();
        let head = bytes.slice(..after_bytes);
        let cut = async {
            // One trip through the scheduler lets hyper flush the head before the error
            // discards the connection.
            tokio::task::yield_now().await;
            Err::<Bytes, _>(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "provider-sim cut the download",
            ))
        };
        let body = futures::stream::iter([Ok(head)]).chain(futures::stream::once(cut));
        let mut response = axum::body::Body::from_stream(body).into_response();
        // The length of the whole file, so the client can tell it was cut short.
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        response
    } else {
        guard.chunk_sent();
        guard.finish();
        bytes.into_response()
    };
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn png_size(bytes: &[u8]) -> (u32, u32) {
        assert_eq!(bytes.get(..8), Some(&b"\x89PNG\r\n\x1a\n"[..]));
        let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        (be(16), be(20))
    }

    #[test]
    fn png_has_the_requested_size_and_differs_by_seed() {
        let a = png(64, 48, seed_of("a red fox"));
        let b = png(64, 48, seed_of("a blue whale"));
        assert_eq!(png_size(&a), (64, 48));
        assert_ne!(a, b);
        assert_eq!(a, png(64, 48, seed_of("a red fox")), "deterministic");
    }

    #[test]
    fn large_png_is_small_and_quick() {
        let started = Instant::now();
        let big = png(4096, 4096, 7);
        assert_eq!(png_size(&big), (4096, 4096));
        assert!(big.len() < 400_000, "{} bytes", big.len());
        assert!(started.elapsed().as_secs() < 2, "{:?}", started.elapsed());
        let blurred = encode(ImageFormat::Png, 2048, 2048, Picture::Blurred);
        assert_eq!(png_size(&blurred), (2048, 2048));
    }

    #[test]
    fn jpeg_starts_with_soi_and_ends_with_eoi() {
        let image = jpeg(300, 200, 1);
        assert_eq!(image.get(..2), Some(&[0xff, 0xd8][..]));
        assert_eq!(image.get(image.len() - 2..), Some(&[0xff, 0xd9][..]));
        assert!(encode(ImageFormat::Jpeg, 70_000, 10, Picture::Blurred).is_empty());
    }

    #[test]
    fn ratios_fit_the_pixel_budget() {
        assert_eq!(fit_ratio((1, 1), 1024 * 1024, 16), (1024, 1024));
        let (w, h) = fit_ratio((16, 9), 1024 * 1024, 32);
        assert_eq!((w % 32, h % 32), (0, 0));
        assert!(w > h);
        assert_eq!(parse_ratio("16:9"), Some((16, 9)));
        assert_eq!(parse_ratio("0:9"), None);
        assert_eq!(parse_ratio("wide"), None);
    }

    #[test]
    fn the_store_forgets_the_oldest_files() {
        let store = FileStore::default();
        let first = store.put("image/png", Bytes::from_static(b"1"), Behaviour::Normal);
        for _ in 0..MAX_FILES {
            store.put("image/png", Bytes::from_static(b"2"), Behaviour::Normal);
        }
        assert!(store.get(&first).is_none());
    }
}
