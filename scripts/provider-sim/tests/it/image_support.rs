//! Helpers shared by the image generation tests (OpenAI and xAI, Flux, Stability, Gemini and
//! Imagen).

// These helpers run only inside tests, where a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::StreamExt;
use imagesize::ImageType;
use provider_sim::{Simulator, WireFormat};

/// `bytes` are a whole PNG of `width`×`height`.
pub fn assert_png(bytes: &[u8], width: usize, height: usize) {
    assert_image(bytes, ImageType::Png, width, height);
    assert!(
        bytes.ends_with(b"IEND\xae\x42\x60\x82"),
        "PNG without its IEND"
    );
}

/// `bytes` are a whole JPEG of `width`×`height`.
pub fn assert_jpeg(bytes: &[u8], width: usize, height: usize) {
    assert_image(bytes, ImageType::Jpeg, width, height);
    assert!(
        bytes.ends_with(&[0xff, 0xd9]),
        "JPEG without its EOI marker"
    );
}

fn assert_image(bytes: &[u8], kind: ImageType, width: usize, height: usize) {
    assert_eq!(imagesize::image_type(bytes).unwrap(), kind);
    let size = imagesize::blob_size(bytes).unwrap();
    assert_eq!((size.width, size.height), (width, height));
}

/// How many requests of `format` the simulator served.
pub fn count(sim: &Simulator, format: WireFormat) -> usize {
    sim.requests().iter().filter(|r| r.format == format).count()
}

/// Reads a body the server may cut: the announced length, the bytes that arrived, and whether
/// the body failed (rather than ending).
pub async fn read_cut(response: reqwest::Response) -> (Option<u64>, usize, bool) {
    let announced = response.content_length();
    let mut body = response.bytes_stream();
    let mut received = 0;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => received += chunk.len(),
            Err(_) => return (announced, received, true),
        }
    }
    (announced, received, false)
}

/// GETs `url` (an image URL the simulator handed out).
pub async fn download(url: &str) -> reqwest::Response {
    crate::support::client()
        .get(url)
        .send()
        .await
        .expect("download image")
}
