//! The media actions.

pub mod image;
pub mod video;
