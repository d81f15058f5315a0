//! The bytes of a generated video, and their download (which `Behaviour::DownloadDrop` cuts).
//!
//! A "video" is the start of an MP4 file: an `ftyp` box (major brand `isom`, minor version 512,
//! compatible brands `isom iso2 avc1 mp41`, as ffmpeg writes them) and an `mdat` box of
//! deterministic filler up to [`SimConfig::video_bytes`]. It has no `moov` box, so it is not a
//! playable video: a client can check its container signature and its length, nothing more.
//!
//! [`SimConfig::video_bytes`]: crate::SimConfig::video_bytes

use std::io;

use axum::body::Body;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt as _;

use crate::config::Behaviour;
use crate::record::ResponseGuard;

/// Size of the `ftyp` box.
const FTYP_LEN: usize = 32;
/// Size of an `mdat` box header with a 32-bit size.
const MDAT_HEADER: usize = 8;
/// Smallest video: the two box headers.
pub(crate) const MIN_VIDEO_BYTES: usize = FTYP_LEN + MDAT_HEADER;

/// An MP4 start of `len` bytes (at least [`MIN_VIDEO_BYTES`]): `ftyp`, then `mdat` to the end.
pub(crate) fn mp4(len: usize) -> Bytes {
    let len = len.max(MIN_VIDEO_BYTES);
    let mut bytes = Vec::with_capacity(len);
    bytes.extend_from_slice(&32u32.to_be_bytes());
    bytes.extend_from_slice(b"ftypisom");
    bytes.extend_from_slice(&512u32.to_be_bytes());
    bytes.extend_from_slice(b"isomiso2avc1mp41");
    let mdat = len - FTYP_LEN;
    match u32::try_from(mdat) {
        Ok(size) => {
            bytes.extend_from_slice(&size.to_be_bytes());
            bytes.extend_from_slice(b"mdat");
        }
        // Past 4 GiB the box size moves to a 64-bit `largesize` after the type.
        Err(_) => {
            bytes.extend_from_slice(&1u32.to_be_bytes());
            bytes.extend_from_slice(b"mdat");
            bytes.extend_from_slice(&(mdat as u64).to_be_bytes());
        }
    }
    let filled = bytes.len();
    // Deterministic filler: the same bytes for the same length, every time.
    bytes.extend((filled..len).map(|i| (i.wrapping_mul(31).wrapping_add(7) % 251) as u8));
    Bytes::from(bytes)
}

/// `http://{host}` of a request, from its `Host` header, for the absolute URLs of generated
/// videos: a client reaches the video where it reached the simulator.
pub(crate) fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// A `200` carrying `video` as `video/mp4` with its full `Content-Length`; under
/// `Behaviour::DownloadDrop` the body stops after `after_bytes` and the connection is cut.
pub(crate) fn download(video: Bytes, behaviour: &Behaviour, guard: ResponseGuard) -> Response {
    download_as(video, "video/mp4", behaviour, guard)
}

/// A `200` carrying `bytes` as `content_type` with their full `Content-Length`, cut after
/// `after_bytes` under `Behaviour::DownloadDrop` (a video, a batch's results file).
pub(crate) fn download_as(
    video: Bytes,
    content_type: &'static str,
    behaviour: &Behaviour,
    mut guard: ResponseGuard,
) -> Response {
    let total = video.len();
    let cut_at = match behaviour {
        Behaviour::DownloadDrop { after_bytes } if *after_bytes < total => Some(*after_bytes),
        _ => None,
    };
    let body = match cut_at {
        None => {
            guard.finish();
            Body::from(video)
        }
        Some(after) => {
            // The simulator cuts the body itself, so the drop is not the client's.
            guard.abort();
            let head = video.slice(..after);
            let cut = async {
                // One trip through the scheduler lets hyper flush the head before the error
                // discards the connection.
                tokio::task::yield_now().await;
                Err::<Bytes, _>(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "provider-sim cut the download",
                ))
            };
            let stream =
                futures::stream::iter([Ok::<_, io::Error>(head)]).chain(futures::stream::once(cut));
            Body::from_stream(stream)
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(total));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_mp4_start_of_the_asked_length() {
        let video = mp4(64 * 1024);
        assert_eq!(video.len(), 64 * 1024);
        assert_eq!(&video[4..12], b"ftypisom");
        assert_eq!(&video[16..32], b"isomiso2avc1mp41");
        assert_eq!(&video[36..40], b"mdat");
        let mdat = u32::from_be_bytes([video[32], video[33], video[34], video[35]]);
        assert_eq!(mdat as usize, 64 * 1024 - 32);
        assert_eq!(mp4(64 * 1024), video, "deterministic");
        assert_eq!(mp4(3).len(), MIN_VIDEO_BYTES);
    }
}
