//! The offline placeholder: a real PNG of the size asked for (a gradient whose colours come
//! from the prompt, so different prompts give different pictures), made in the process with no
//! key and no network. `model_in_use` says it is a placeholder.

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{
    Generated, GeneratedImage, ImageProvider, ImageRequest, check_format, check_n, check_no_input,
};
use crate::error::MediaError;
use crate::models::Provider;

/// The side of a placeholder when the request gives no size.
const DEFAULT_SIDE: u32 = 1024;
/// The smallest side.
const MIN_SIDE: u32 = 16;
/// The most placeholders per request.
const MAX_N: u32 = 4;

/// The offline placeholder provider.
#[derive(Debug)]
pub struct Dummy {
    max_side: u32,
}

impl Dummy {
    /// Placeholders of at most `max_side` pixels a side.
    pub fn new(max_side: u32) -> Self {
        Self {
            max_side: max_side.max(MIN_SIDE),
        }
    }
}

/// A PNG of `width`×`height`: a diagonal gradient between two colours taken from `seed`.
pub fn placeholder_png(
    width: u32,
    height: u32,
    seed: &[u8],
) -> Result<Vec<u8>, png::EncodingError> {
    let digest = Sha256::digest(seed);
    let from = [digest[0], digest[1], digest[2]];
    let to = [digest[3], digest[4], digest[5]];
    let span = (width + height).max(2) - 2;
    let mut row = Vec::with_capacity(width as usize * 3);
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::Fast);
        let mut writer = encoder.write_header()?;
        let mut stream = writer.stream_writer()?;
        for y in 0..height {
            row.clear();
            for x in 0..width {
                let t = u64::from(x + y);
                let span = u64::from(span.max(1));
                for c in 0..3 {
                    let a = u64::from(from[c]);
                    let b = u64::from(to[c]);
                    let v = (a * (span - t.min(span)) + b * t.min(span)) / span;
                    row.push(u8::try_from(v).unwrap_or(u8::MAX));
                }
            }
            std::io::Write::write_all(&mut stream, &row)?;
        }
        stream.finish()?;
    }
    Ok(out)
}

#[async_trait]
impl ImageProvider for Dummy {
    fn provider(&self) -> Provider {
        Provider::Dummy
    }

    fn check(&self, request: &ImageRequest) -> Result<(), String> {
        check_n(request, MAX_N)?;
        check_no_input(request)?;
        check_format(request, &["png"])?;
        if let Some((w, h)) = request.size
            && (w.max(h) > self.max_side || w.min(h) < MIN_SIDE)
        {
            return Err(format!(
                "the placeholder makes sizes from {MIN_SIDE} to {} pixels a side, not {w}x{h}",
                self.max_side
            ));
        }
        Ok(())
    }

    async fn generate(&self, request: &ImageRequest) -> Result<Generated, MediaError> {
        let (width, height) = request.size.unwrap_or((DEFAULT_SIDE, DEFAULT_SIDE));
        let prompt = request.prompt.clone();
        let n = request.n;
        let seed = request.seed;
        // Encoding a large PNG takes a few milliseconds of CPU: off the async threads.
        let images = tokio::task::spawn_blocking(move || {
            (0..n)
                .map(|i| {
                    let key = format!("{prompt}\u{0}{i}\u{0}{seed:?}");
                    placeholder_png(width, height, key.as_bytes()).map(|png| GeneratedImage {
                        bytes: Bytes::from(png),
                        mime: "image/png",
                        ext: "png",
                        width,
                        height,
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|e| MediaError::BadOutput(format!("the placeholder failed: {e}")))?
        .map_err(|e| MediaError::BadOutput(format!("the placeholder failed: {e}")))?;
        Ok(Generated {
            images,
            revised_prompt: None,
            usage: json!({}),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_placeholder_is_a_png_of_the_size_asked() {
        let png = placeholder_png(300, 200, b"a red fox").unwrap();
        assert_eq!(
            super::super::sniff(&png),
            Some(("image/png", "png", 300, 200))
        );
        let decoder = png::Decoder::new(std::io::Cursor::new(png.clone()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (300, 200));
        let other = placeholder_png(300, 200, b"a blue whale").unwrap();
        assert_ne!(png, other, "different prompts, different pictures");
    }
}
