//! The shared contract of the services: the DomainAction envelope, stream and key names, the bus
//! and worker runtime, task events, settings, auth, errors, telemetry and file storage.

pub mod audio;
pub mod auth;
pub mod backoff;
pub mod batch;
pub mod bus;
pub mod cancel;
pub mod db;
pub mod digest;
pub mod envelope;
pub mod error;
pub mod events;
pub mod history;
pub mod http;
pub mod live_audio;
pub mod llm;
pub mod models;
pub mod names;
pub mod payloads;
pub mod provider;
pub mod sessions;
pub mod settings;
pub mod shutdown;
pub mod storage;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod text;
pub mod worker;

pub use bus::Bus;
pub use envelope::DomainAction;
pub use error::AppError;
pub use events::{Event, EventType};
pub use names::Names;
