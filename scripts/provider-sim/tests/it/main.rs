//! Integration tests: a real HTTP client against a simulator bound to port 0.

mod anthropic;
mod anthropic_batch;
mod bfl;
mod control;
mod deepgram;
mod deepgram_live;
mod elevenlabs;
mod failures;
mod gemini;
mod gemini_batch;
mod gemini_image;
mod gemini_speech;
mod gemini_transcription;
mod image_support;
mod kling;
mod openai_batch;
mod openai_embeddings;
mod openai_images;
mod openai_speech;
mod openai_transcription;
mod sora;
mod stability;
mod stream;
mod support;
mod veo;
mod video_support;
