//! Audio: probing files for publishing, and progressive playback.
//!
//! This module owns everything that touches symphonia. Playback is built from parts that know
//! nothing of the network:
//!
//! * [`ChunkSource`] reads a track's chunks from the store as a seekable `MediaSource`; a read
//!   of a chunk not yet stored waits on a [`Feed`], which the node's event loop bumps as
//!   verified chunks arrive (and whose playhead tells the fetcher what to ask for first);
//! * [`Decoder`] decodes one track to `f32` samples, gaplessly, with sample-accurate seeks;
//! * [`Sink`]s take the samples: WAV file, raw PCM, real-time null, memory, speakers;
//! * [`Player`] plays a queue on its own thread, measures time to first audio and stutters,
//!   and reports plays that count to a [`PlayHook`] (the ledger).

pub mod decode;
pub mod feed;
pub mod probe;
pub mod queue;
pub mod session;
pub mod sink;
pub mod source;
#[cfg(feature = "speakers")]
pub mod speakers;

pub use decode::{Decoder, Spec};
pub use feed::{Feed, FeedError};
pub use probe::{AUDIO_EXTENSIONS, MediaInfo, SharedBytes, probe_file};
pub use queue::{QueueItem, parse_position, resolve};
pub use session::{Control, PlayHook, PlayOptions, Player, State, Status, TrackStats, Tracks, counts};
pub use sink::{MemorySink, NullSink, RawSink, Sink, SinkError, WavSink};
pub use source::{ChunkSource, Repair};

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
    /// The bytes could not be read (a file error, or a streamed chunk that never arrived).
    #[error("{0}")]
    Unreadable(String),
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

/// Why playback failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlayError {
    /// Nothing the node knows matches.
    #[error("nothing to play matches {0:?}")]
    NothingFound(String),
    /// An id prefix matches several items.
    #[error("{0:?} matches several items; give more digits")]
    Ambiguous(String),
    /// A position like `1:30` could not be read.
    #[error("bad position {0:?}: use seconds, M:SS or H:MM:SS")]
    BadPosition(String),
    /// The track's bytes could not be had.
    #[error("{0}")]
    Source(String),
    /// The track's audio could not be decoded.
    #[error("{track}: {error}")]
    Media {
        /// The track's title.
        track: String,
        /// What was wrong.
        error: MediaError,
    },
    /// The output failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// No track of the queue could be played.
    #[error("{0}")]
    Failed(String),
    /// Nothing is playing.
    #[error("nothing is playing")]
    NotPlaying,
    /// Too many control messages are waiting.
    #[error("the player is busy; try again")]
    Busy,
}
