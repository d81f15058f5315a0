//! Reply shared by the text-to-speech formats whose body is the audio itself (OpenAI
//! `stream_format: "audio"`, ElevenLabs HTTP): chunks of raw bytes, errors in each API's shape.

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};

use crate::audio::Clip;
use crate::engine::{Failure, Turn};

/// Maps a failure to the API's error response; the second argument is the model asked for.
pub(crate) type ErrorShape = fn(Failure, &str) -> Response;

/// Stray byte ending a "malformed" raw audio body: half of a 16-bit sample, which leaves PCM of
/// odd length and WAV data longer than its header says.
const STRAY_BYTE: &[u8] = &[0];

/// A text-to-speech reply whose body is the encoded clip.
pub(crate) struct RawAudioTurn {
    clip: Clip,
    streaming: bool,
    model: String,
    errors: ErrorShape,
}

impl RawAudioTurn {
    /// `streaming` replies send the clip chunk by chunk, paced; others send it whole.
    pub(crate) fn new(clip: Clip, streaming: bool, model: &str, errors: ErrorShape) -> Self {
        Self {
            clip,
            streaming,
            model: model.to_owned(),
            errors,
        }
    }

    fn audio_response(&self, body: Bytes) -> Response {
        let mut response = (StatusCode::OK, body).into_response();
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static(self.clip.format().content_type()),
        );
        response
    }
}

impl Turn for RawAudioTurn {
    fn streaming(&self) -> bool {
        self.streaming
    }

    fn units(&self) -> usize {
        self.clip.chunk_count()
    }

    fn opening(&mut self) -> Vec<Bytes> {
        Vec::new()
    }

    fn unit(&mut self, index: usize) -> Bytes {
        self.clip.chunk(index)
    }

    /// The body simply ends: chunked transfer encoding's last chunk is the terminator.
    fn closing(&mut self) -> Vec<Bytes> {
        Vec::new()
    }

    fn malformed(&mut self) -> Vec<Bytes> {
        vec![Bytes::from_static(STRAY_BYTE)]
    }

    fn has_error_event(&self) -> bool {
        false
    }

    fn error_event(&mut self) -> Vec<Bytes> {
        Vec::new()
    }

    fn complete(&self) -> Response {
        self.audio_response(self.clip.whole())
    }

    fn malformed_complete(&self) -> Response {
        let mut body = BytesMut::from(self.clip.whole());
        body.put_slice(STRAY_BYTE);
        self.audio_response(body.freeze())
    }

    fn failure(&self, failure: Failure) -> Response {
        (self.errors)(failure, &self.model)
    }

    fn stream_content_type(&self) -> &'static str {
        self.clip.format().content_type()
    }
}
