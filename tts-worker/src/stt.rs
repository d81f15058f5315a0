//! Speech to text: the providers that transcribe, behind one trait, and what a transcription
//! finds; audio decoded and cut for a model that runs here.

pub mod decode;
pub mod live;
#[cfg(feature = "local-stt")]
pub mod local;
pub mod providers;
pub mod score;
pub mod split;

use serde::Serialize;

/// What a transcription found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transcript {
    /// The whole text: the segments' texts joined by spaces; empty for silence.
    pub text: String,
    /// The language the text was transcribed as (`en`).
    pub language: String,
    /// How long the audio plays, in seconds.
    pub duration_secs: f64,
    /// The text in pieces with where they are in the audio, in order.
    pub segments: Vec<Segment>,
}

/// A piece of a transcript.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    /// Where its speech starts, seconds from the start of the audio.
    pub start: f64,
    /// Where its speech ends.
    pub end: f64,
    /// What was said.
    pub text: String,
}
