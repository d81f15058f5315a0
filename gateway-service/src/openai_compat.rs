//! The OpenAI-compatible surface's logic: Chat Completions, speech, embeddings and image requests,
//! the Files and Batch APIs, errors in OpenAI's formats, and a task's events translated into
//! completion objects, stream chunks, audio and images.

pub mod auth;
pub mod batches;
pub mod chunks;
pub mod completion;
pub mod embeddings;
pub mod error;
pub mod files;
pub mod images;
pub mod request;
pub mod response;
pub mod speech;
pub mod transcription;

pub use auth::OpenAiUser;
pub use error::OpenAiError;
pub use request::CompletionRequest;
pub use speech::SpeechRequest;
pub use transcription::TranscriptionRequest;
