//! Helpers shared by the video job tests (Sora, Veo, Kling).

// These helpers run only inside tests, where a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::StreamExt;
use provider_sim::{SimConfig, Simulator, WireFormat};

/// Size of the videos in these tests.
pub const VIDEO_BYTES: usize = 20_000;

/// A simulator whose jobs run for `job_polls` polls and make `VIDEO_BYTES` videos.
pub fn video_config(job_polls: usize) -> SimConfig {
    SimConfig {
        job_polls,
        video_bytes: VIDEO_BYTES,
        poll_after: Duration::from_millis(250),
        ..SimConfig::default()
    }
}

/// `bytes` are the simulator's video: an MP4 `ftyp` box first, `len` bytes in all.
pub fn assert_mp4(bytes: &[u8], len: usize) {
    assert_eq!(bytes.len(), len);
    assert_eq!(&bytes[4..8], b"ftyp");
    assert_eq!(&bytes[8..12], b"isom");
    assert_eq!(&bytes[16..32], b"isomiso2avc1mp41");
    assert_eq!(&bytes[36..40], b"mdat");
}

/// Reads a body that the server cuts: the announced length, the bytes that arrived, and
/// whether the body failed (rather than ending).
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

/// The formats of the requests the simulator served, in order.
pub fn formats(sim: &Simulator) -> Vec<WireFormat> {
    sim.requests().iter().map(|r| r.format).collect()
}

/// How many requests of `format` the simulator served.
pub fn count(sim: &Simulator, format: WireFormat) -> usize {
    sim.requests().iter().filter(|r| r.format == format).count()
}
