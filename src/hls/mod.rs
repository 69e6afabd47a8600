//! HLS: cutting the H.264 stream into parts and segments, keeping the live window, and the
//! rules for blocking playlist reloads.

pub mod reload;
pub mod segmenter;
pub mod store;
