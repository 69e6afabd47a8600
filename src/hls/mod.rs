//! HLS: cutting the H.264 stream into parts and segments (`segmenter`), the live window they
//! make (`window`, pure, time passed in), sharing it with the HTTP side and waiting on it
//! (`store`: blocking reloads, hinted parts, the first segment after start), the names of its
//! files (`names`), the rules for blocking playlist reloads (`reload`), and the timing of a
//! source's own H.264, learned from its key frames (`passthrough`). The H.264 thread
//! that feeds it all is `pipeline::h264`.

pub mod names;
pub mod passthrough;
pub mod reload;
pub mod segmenter;
pub mod store;
pub mod window;
