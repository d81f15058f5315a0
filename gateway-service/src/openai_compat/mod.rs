//! The OpenAI-compatible surface's logic: Chat Completions requests and errors in OpenAI's formats,
//! and a task's events translated into completion objects and stream chunks.

pub mod auth;
pub mod chunks;
pub mod completion;
pub mod error;
pub mod request;
pub mod response;

pub use auth::OpenAiUser;
pub use error::OpenAiError;
pub use request::CompletionRequest;
