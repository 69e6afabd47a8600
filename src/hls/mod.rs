//! HLS: the rules for blocking playlist reloads.

pub mod reload;
