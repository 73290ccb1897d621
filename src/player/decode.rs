//! Decoding one track to interleaved `f32` samples, with sample-accurate seeking.
//!
//! The decoder reads from any symphonia `MediaSource`: a file, bytes in memory, or a
//! [`super::ChunkSource`] that blocks until the network has delivered (and verified) the bytes
//! it needs. Gapless mode is on, so encoder delay and padding are trimmed and the tracks of a
//! release join without a gap.

use std::io::{Seek, SeekFrom};

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::CODEC_TYPE_MP3;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::{FormatReader, SeekMode, SeekTo};
use symphonia::core::io::MediaSource;
use symphonia::core::units::Time;

use super::MediaError;
use super::probe::{audio_track, make_decoder, open_source};

/// Packets in a row that may fail to decode before the track is declared corrupt.
const MAX_BAD_PACKETS: u32 = 4;

/// The shape of decoded audio.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Spec {
    /// Frames per second.
    pub rate: u32,
    /// Interleaved channels.
    pub channels: u16,
}

impl std::fmt::Display for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} Hz, {} channel{}", self.rate, self.channels, if self.channels == 1 { "" } else { "s" })
    }
}

/// A track being decoded.
pub struct Decoder {
    format: Box<dyn FormatReader>,
    decoder: Box<dyn symphonia::core::codecs::Decoder>,
    track: u32,
    spec: Spec,
    declared: Option<u64>,
    buf: Option<SampleBuffer<f32>>,
    /// After a seek: frames before this timestamp are decoded and dropped.
    skip_until: Option<u64>,
    /// Frames handed out since the start (or the last seek target).
    frames: u64,
    /// Timestamp of the first frame handed out after the last seek.
    origin: u64,
    bad_packets: u32,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder").field("spec", &self.spec).field("frames", &self.frames).finish_non_exhaustive()
    }
}

fn sym_error(e: SymError) -> MediaError {
    match e {
        SymError::IoError(e) => MediaError::Unreadable(e.to_string()),
        SymError::Unsupported(what) => MediaError::Unsupported(what.to_string()),
        other => MediaError::Corrupt(other.to_string()),
    }
}

impl Decoder {
    /// Opens a track. `ext` is a hint (the original file's extension).
    pub fn open(source: Box<dyn MediaSource>, ext: Option<&str>) -> Result<Self, MediaError> {
        let (mut format, _) = open_source(source, ext, true)?;
        let (mut track, mut params) = audio_track(format.as_ref())?;
        let mut declared = params.n_frames;
        if params.codec == CODEC_TYPE_MP3 && params.delay.is_none() {
            // No LAME tag, so no delay or padding to trim. Symphonia's gapless mode would still
            // cut the stream at its length, which for a VBR file without a Xing header is only
            // an estimate from the first frame's bit rate: open it again without trimming, and
            // do not take that estimate as a promise when judging truncation.
            let mut stream = format.into_inner();
            stream.seek(SeekFrom::Start(0)).map_err(|e| MediaError::Unreadable(e.to_string()))?;
            (format, _) = open_source(Box::new(stream), ext, false)?;
            (track, params) = audio_track(format.as_ref())?;
            declared = None;
        }
        let decoder = make_decoder(&params)?;
        let rate = params.sample_rate.ok_or_else(|| MediaError::NotAudio("no sample rate".into()))?;
        let channels = params.channels.map_or(0, |c| c.count() as u16);
        Ok(Self {
            track,
            format,
            decoder,
            spec: Spec { rate, channels },
            declared,
            buf: None,
            skip_until: None,
            frames: 0,
            origin: 0,
            bad_packets: 0,
        })
    }

    /// Sample rate and channels (channels may be refined by the first decoded packet).
    pub fn spec(&self) -> Spec {
        self.spec
    }

    /// Length in milliseconds, if the stream declares it.
    pub fn duration_ms(&self) -> Option<u64> {
        self.declared.map(|f| f * 1000 / u64::from(self.spec.rate.max(1)))
    }

    /// Position of the next frame to be handed out, in milliseconds.
    pub fn position_ms(&self) -> u64 {
        (self.origin + self.frames) * 1000 / u64::from(self.spec.rate.max(1))
    }

    /// Seeks to `ms` from the start. The next samples handed out start at that exact frame
    /// (packets before it are decoded and dropped). Returns the position landed on.
    pub fn seek(&mut self, ms: u64) -> Result<u64, MediaError> {
        let time = Time::new(ms / 1000, (ms % 1000) as f64 / 1000.0);
        let seeked = self.format.seek(SeekMode::Accurate, SeekTo::Time { time, track_id: Some(self.track) }).map_err(
            |e| match e {
                SymError::SeekError(kind) => MediaError::Corrupt(format!("cannot seek to {ms} ms: {kind:?}")),
                other => sym_error(other),
            },
        )?;
        self.decoder.reset();
        self.skip_until = Some(seeked.required_ts);
        self.origin = seeked.required_ts;
        self.frames = 0;
        Ok(self.position_ms())
    }

    /// The next decoded samples, interleaved, with their format; `None` at the end of the
    /// track.
    pub fn next_samples(&mut self) -> Result<Option<(Spec, &[f32])>, MediaError> {
        loop {
            let packet = match self.format.next_packet() {
                Ok(p) => p,
                Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return self.at_end().map(|()| None);
                }
                Err(SymError::ResetRequired) => return self.at_end().map(|()| None),
                Err(e) => return Err(sym_error(e)),
            };
            if packet.track_id() != self.track {
                continue;
            }
            let decoded = match self.decoder.decode(&packet) {
                Ok(d) => {
                    self.bad_packets = 0;
                    d
                }
                Err(SymError::DecodeError(e)) => {
                    self.bad_packets += 1;
                    if self.bad_packets > MAX_BAD_PACKETS {
                        return Err(MediaError::Corrupt(format!(
                            "undecodable audio at {} ms: {e}",
                            self.position_ms()
                        )));
                    }
                    tracing::debug!("skipping an undecodable packet: {e}");
                    continue;
                }
                Err(e) => return Err(sym_error(e)),
            };
            let spec = decoded.spec();
            let channels = spec.channels.count() as u16;
            if self.frames == 0 && self.skip_until.is_none() {
                self.spec.channels = channels;
            } else if channels != self.spec.channels || spec.rate != self.spec.rate {
                return Err(MediaError::Unsupported("the stream changes format mid-way".into()));
            }
            let frames = decoded.frames();
            if frames == 0 {
                continue;
            }
            let buf = match &mut self.buf {
                Some(b) if b.capacity() >= decoded.capacity() * usize::from(channels.max(1)) => b,
                slot => slot.insert(SampleBuffer::new(decoded.capacity() as u64, *spec)),
            };
            buf.copy_interleaved_ref(decoded);
            let mut skip = 0usize;
            if let Some(until) = self.skip_until {
                // The packet's first output frame is at `packet.ts` (gapless trimming keeps
                // timestamps on the trimmed timeline).
                let ahead = until.saturating_sub(packet.ts) as usize;
                if ahead >= frames {
                    continue;
                }
                skip = ahead;
                self.skip_until = None;
            }
            self.frames += (frames - skip) as u64;
            let ch = usize::from(channels.max(1));
            let samples = self.buf.as_ref().map_or(&[][..], |b| &b.samples()[skip * ch..frames * ch]);
            return Ok(Some((self.spec, samples)));
        }
    }

    /// End of stream: a stream that declared more frames than it had was cut off.
    fn at_end(&mut self) -> Result<(), MediaError> {
        if let Some(declared) = self.declared {
            let found = self.origin + self.frames;
            // One long packet of slack: the last packet may be shorter than declared.
            if found + 8192 < declared {
                return Err(MediaError::Truncated { declared, found, sample_rate: self.spec.rate });
            }
        }
        Ok(())
    }
}
