//! Audio: probing files for publishing, and (in later work) progressive playback.
//!
//! This module owns everything that touches symphonia. It is sans-IO: it reads bytes it is
//! given and never opens files or sockets itself.

pub mod probe;

pub use probe::{AUDIO_EXTENSIONS, MediaInfo, SharedBytes, probe};

/// Why audio could not be read.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaError {
    /// Not a format or stream we can decode.
    #[error("not decodable audio ({0})")]
    NotAudio(String),
    /// A format we recognise, with a codec this build cannot decode.
    #[error("unsupported audio: {0}")]
    Unsupported(String),
    /// The audio data is damaged.
    #[error("corrupt audio: {0}")]
    Corrupt(String),
    /// The file ends before the audio it declares.
    #[error("truncated audio file: {}", truncated_detail(*declared, *found, *sample_rate))]
    Truncated {
        /// Frames the header declares (0 if unknown).
        declared: u64,
        /// Frames actually present.
        found: u64,
        /// Sample rate, for reporting in seconds.
        sample_rate: u32,
    },
}

fn truncated_detail(declared: u64, found: u64, rate: u32) -> String {
    if rate == 0 {
        return "the last page is cut off".into();
    }
    let s = |f: u64| f as f64 / f64::from(rate);
    format!("header declares {:.2} s but only {:.2} s is present", s(declared), s(found))
}
