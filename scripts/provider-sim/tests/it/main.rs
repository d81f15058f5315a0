//! Integration tests: a real HTTP client against a simulator bound to port 0.

mod anthropic;
mod control;
mod deepgram;
mod deepgram_live;
mod elevenlabs;
mod failures;
mod gemini;
mod gemini_speech;
mod gemini_transcription;
mod openai_embeddings;
mod openai_speech;
mod openai_transcription;
mod stream;
mod support;
