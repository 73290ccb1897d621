//! Where decoded audio goes: a WAV file, raw PCM on any writer (stdout, an HTTP body), a
//! real-time null sink for measurement, memory (for embedders and tests), and speakers
//! (with the `speakers` cargo feature).
//!
//! Real-time sinks consume audio at its sample rate from a small buffer, like a sound card:
//! when the buffer runs dry while playing, the listener hears a gap, and the sink counts a
//! **stutter**. File and pipe sinks take audio as fast as it comes (a pipe's reader, such as
//! `aplay`, paces it), so they count none.

use std::io::{Seek, SeekFrom, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::decode::Spec;

/// Why audio could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// Writing failed.
    #[error("writing {target}: {reason}")]
    Io {
        /// The output.
        target: String,
        /// Why.
        reason: String,
    },
    /// The reader went away (a closed pipe): playback stops quietly.
    #[error("{0} was closed")]
    Closed(String),
    /// A track's sample rate or channels differ from what the output was started with.
    #[error("{target} holds {have}, but this track is {got}; play it on its own")]
    Format {
        /// The output.
        target: String,
        /// The output's format.
        have: Spec,
        /// The track's format.
        got: Spec,
    },
    /// The audio device could not be opened or used.
    #[error("audio device: {0}")]
    Device(String),
}

/// A destination for decoded, interleaved `f32` audio.
pub trait Sink: Send {
    /// A track with this format begins. Sinks that cannot change format mid-way refuse a
    /// different one.
    fn start(&mut self, spec: Spec) -> Result<(), SinkError>;
    /// Takes interleaved samples; a real-time sink blocks while its buffer is full.
    fn write(&mut self, samples: &[f32]) -> Result<(), SinkError>;
    /// Pauses or resumes consumption (real-time sinks).
    fn pause(&mut self, _paused: bool) {}
    /// Drops audio buffered but not yet heard (after a seek or a skip).
    fn discard(&mut self) {}
    /// Milliseconds of audio buffered but not yet heard.
    fn buffered_ms(&self) -> u64 {
        0
    }
    /// Times the sink ran dry while playing.
    fn stutters(&self) -> u64 {
        0
    }
    /// Plays out what is buffered and finalises the output.
    fn finish(&mut self) -> Result<(), SinkError>;
    /// A short description, e.g. `out.wav` or `null (real time)`.
    fn describe(&self) -> String;
}

fn io_error(target: &str, e: &std::io::Error) -> SinkError {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        SinkError::Closed(target.to_string())
    } else {
        SinkError::Io { target: target.to_string(), reason: e.to_string() }
    }
}

fn to_s16le(samples: &[f32], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(samples.len() * 2);
    for s in samples {
        let v = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// Fixes the output format at the first track; refuses a different one later.
fn fixed_format(slot: &mut Option<Spec>, spec: Spec, target: &str) -> Result<(), SinkError> {
    match slot {
        Some(have) if *have != spec => Err(SinkError::Format { target: target.to_string(), have: *have, got: spec }),
        _ => {
            *slot = Some(spec);
            Ok(())
        }
    }
}

/// Raw signed 16-bit little-endian interleaved PCM on any writer (`--out -` for stdout), for
/// piping into `aplay -f S16_LE -r RATE -c CHANNELS` or `ffplay -f s16le`.
pub struct RawSink<W: Write + Send> {
    out: W,
    name: String,
    spec: Option<Spec>,
    scratch: Vec<u8>,
}

impl<W: Write + Send> RawSink<W> {
    /// Raw PCM to `out`, named `name` in errors.
    pub fn new(out: W, name: impl Into<String>) -> Self {
        Self { out, name: name.into(), spec: None, scratch: Vec::new() }
    }
}

impl<W: Write + Send> Sink for RawSink<W> {
    fn start(&mut self, spec: Spec) -> Result<(), SinkError> {
        fixed_format(&mut self.spec, spec, &self.name)
    }

    fn write(&mut self, samples: &[f32]) -> Result<(), SinkError> {
        to_s16le(samples, &mut self.scratch);
        self.out.write_all(&self.scratch).map_err(|e| io_error(&self.name, &e))
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|e| io_error(&self.name, &e))
    }

    fn describe(&self) -> String {
        format!("{} (raw s16le PCM)", self.name)
    }
}

/// A 16-bit PCM WAV file. The header's sizes are filled in by [`Sink::finish`].
pub struct WavSink<W: Write + Seek + Send> {
    out: W,
    name: String,
    spec: Option<Spec>,
    data_bytes: u64,
    scratch: Vec<u8>,
}

impl WavSink<std::io::BufWriter<std::fs::File>> {
    /// Creates (or truncates) the WAV file at `path`.
    pub fn create(path: &std::path::Path) -> Result<Self, SinkError> {
        let name = path.display().to_string();
        let file = std::fs::File::create(path).map_err(|e| io_error(&name, &e))?;
        Ok(Self::new(std::io::BufWriter::new(file), name))
    }
}

impl<W: Write + Seek + Send> WavSink<W> {
    /// A WAV stream on `out`, named `name` in errors.
    pub fn new(out: W, name: impl Into<String>) -> Self {
        Self { out, name: name.into(), spec: None, data_bytes: 0, scratch: Vec::new() }
    }

    fn header(spec: Spec, data_bytes: u32) -> Vec<u8> {
        let block = u32::from(spec.channels) * 2;
        let mut h = Vec::with_capacity(44);
        h.extend_from_slice(b"RIFF");
        h.extend_from_slice(&data_bytes.saturating_add(36).to_le_bytes());
        h.extend_from_slice(b"WAVEfmt ");
        h.extend_from_slice(&16u32.to_le_bytes());
        h.extend_from_slice(&1u16.to_le_bytes());
        h.extend_from_slice(&spec.channels.to_le_bytes());
        h.extend_from_slice(&spec.rate.to_le_bytes());
        h.extend_from_slice(&(spec.rate * block).to_le_bytes());
        h.extend_from_slice(&(block as u16).to_le_bytes());
        h.extend_from_slice(&16u16.to_le_bytes());
        h.extend_from_slice(b"data");
        h.extend_from_slice(&data_bytes.to_le_bytes());
        h
    }
}

impl<W: Write + Seek + Send> Sink for WavSink<W> {
    fn start(&mut self, spec: Spec) -> Result<(), SinkError> {
        let first = self.spec.is_none();
        fixed_format(&mut self.spec, spec, &self.name)?;
        if first {
            self.out.write_all(&Self::header(spec, 0)).map_err(|e| io_error(&self.name, &e))?;
        }
        Ok(())
    }

    fn write(&mut self, samples: &[f32]) -> Result<(), SinkError> {
        to_s16le(samples, &mut self.scratch);
        if self.data_bytes + self.scratch.len() as u64 > u64::from(u32::MAX - 36) {
            return Err(SinkError::Io { target: self.name.clone(), reason: "a WAV file cannot exceed 4 GiB".into() });
        }
        self.data_bytes += self.scratch.len() as u64;
        self.out.write_all(&self.scratch).map_err(|e| io_error(&self.name, &e))
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        let Some(spec) = self.spec else { return Ok(()) };
        let header = Self::header(spec, self.data_bytes as u32);
        let r = self.out.seek(SeekFrom::Start(0)).and_then(|_| self.out.write_all(&header)).and_then(|()| {
            self.out.seek(SeekFrom::End(0))?;
            self.out.flush()
        });
        r.map_err(|e| io_error(&self.name, &e))
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

/// A real-time clock that consumes audio at its sample rate from a bounded buffer, as a sound
/// card does. Shared by the null sink and the speakers' accounting.
#[derive(Debug)]
pub(crate) struct Clock {
    rate: u32,
    channels: u16,
    buffer: Duration,
    started: Option<Instant>,
    queued_frames: u64,
    paused_at: Option<Instant>,
    stutters: u64,
}

impl Clock {
    pub(crate) fn new(buffer: Duration) -> Self {
        Self { rate: 44_100, channels: 2, buffer, started: None, queued_frames: 0, paused_at: None, stutters: 0 }
    }

    fn played(&self, now: Instant) -> Duration {
        match self.started {
            Some(s) => self.paused_at.unwrap_or(now).saturating_duration_since(s),
            None => Duration::ZERO,
        }
    }

    fn queued(&self) -> Duration {
        Duration::from_secs_f64(self.queued_frames as f64 / f64::from(self.rate.max(1)))
    }

    /// Queues `frames`; returns how long to wait before the buffer has room again.
    fn push(&mut self, frames: u64, now: Instant) -> Duration {
        match self.started {
            None => {
                self.started = Some(now);
                self.queued_frames = 0;
            }
            Some(_) if self.paused_at.is_none() && self.played(now) > self.queued() => {
                // The buffer ran dry: the listener heard silence. Rebuffer from here.
                self.stutters += 1;
                tracing::debug!("sink starved: stutter {}", self.stutters);
                self.started = Some(now);
                self.queued_frames = 0;
            }
            Some(_) => {}
        }
        self.queued_frames += frames;
        (self.queued().saturating_sub(self.played(now))).saturating_sub(self.buffer)
    }

    fn buffered(&self, now: Instant) -> Duration {
        if self.started.is_none() { Duration::ZERO } else { self.queued().saturating_sub(self.played(now)) }
    }

    fn pause(&mut self, paused: bool, now: Instant) {
        match (paused, self.paused_at) {
            (true, None) => self.paused_at = Some(now),
            (false, Some(at)) => {
                if let Some(s) = &mut self.started {
                    *s += now.saturating_duration_since(at);
                }
                self.paused_at = None;
            }
            _ => {}
        }
    }

    fn reset(&mut self) {
        self.started = None;
        self.queued_frames = 0;
    }
}

/// Plays audio to nowhere, in real time: the measurement sink. It behaves like a sound card
/// with a 200 ms buffer, so time to first audio and stutters are those a listener would get.
pub struct NullSink {
    clock: Clock,
}

impl Default for NullSink {
    fn default() -> Self {
        Self { clock: Clock::new(Duration::from_millis(200)) }
    }
}

impl NullSink {
    /// A real-time null sink with a 200 ms buffer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Sink for NullSink {
    fn start(&mut self, spec: Spec) -> Result<(), SinkError> {
        if spec.rate != self.clock.rate || spec.channels != self.clock.channels {
            // A new format: play out the old one first, as a device being reopened would.
            std::thread::sleep(self.clock.buffered(Instant::now()));
            self.clock.reset();
            self.clock.rate = spec.rate.max(1);
            self.clock.channels = spec.channels.max(1);
        }
        Ok(())
    }

    fn write(&mut self, samples: &[f32]) -> Result<(), SinkError> {
        let frames = samples.len() as u64 / u64::from(self.clock.channels.max(1));
        let wait = self.clock.push(frames, Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        Ok(())
    }

    fn pause(&mut self, paused: bool) {
        self.clock.pause(paused, Instant::now());
    }

    fn discard(&mut self) {
        self.clock.reset();
    }

    fn buffered_ms(&self) -> u64 {
        self.clock.buffered(Instant::now()).as_millis() as u64
    }

    fn stutters(&self) -> u64 {
        self.clock.stutters
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        std::thread::sleep(self.clock.buffered(Instant::now()));
        self.clock.reset();
        Ok(())
    }

    fn describe(&self) -> String {
        "null (real time)".into()
    }
}

/// Collects audio in memory, as fast as it comes. The samples are shared: keep a clone of
/// [`MemorySink::samples`] to read them after playback.
#[derive(Clone, Default)]
pub struct MemorySink {
    /// The interleaved samples received so far.
    pub samples: Arc<Mutex<Vec<f32>>>,
    /// The format of the first track.
    pub spec: Arc<Mutex<Option<Spec>>>,
}

impl MemorySink {
    /// An empty memory sink.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Sink for MemorySink {
    fn start(&mut self, spec: Spec) -> Result<(), SinkError> {
        let mut slot = self.spec.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        fixed_format(&mut slot, spec, "memory")
    }

    fn write(&mut self, samples: &[f32]) -> Result<(), SinkError> {
        self.samples.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(samples);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_counts_a_dry_buffer_once_and_paces_a_full_one() {
        let t0 = Instant::now();
        let mut c = Clock::new(Duration::from_millis(200));
        c.rate = 1000;
        assert_eq!(c.push(100, t0), Duration::ZERO, "100 ms queued, within the buffer");
        // 500 ms queued at once: 300 ms more than the buffer holds.
        assert_eq!(c.push(400, t0), Duration::from_millis(300));
        // Playing on time: 400 ms later, 100 more ms queued, no stutter.
        assert_eq!(c.push(100, t0 + Duration::from_millis(400)), Duration::ZERO);
        assert_eq!(c.stutters, 0);
        // Paused for a long time: no stutter on resume.
        c.pause(true, t0 + Duration::from_millis(450));
        c.pause(false, t0 + Duration::from_millis(5000));
        c.push(10, t0 + Duration::from_millis(5100));
        assert_eq!(c.stutters, 0);
        // Nothing written for seconds while playing: the buffer ran dry.
        c.push(10, t0 + Duration::from_millis(9000));
        assert_eq!(c.stutters, 1);
    }

    #[test]
    fn wav_header_sizes_are_filled_in_and_formats_are_fixed() {
        let mut sink = WavSink::new(std::io::Cursor::new(Vec::new()), "test.wav");
        let spec = Spec { rate: 8000, channels: 1 };
        sink.start(spec).unwrap();
        sink.write(&[0.0, 0.5, -1.0, 1.0]).unwrap();
        let other = Spec { rate: 44_100, channels: 2 };
        assert!(matches!(sink.start(other), Err(SinkError::Format { .. })));
        sink.finish().unwrap();
        let bytes = sink.out.into_inner();
        assert_eq!(bytes.len(), 44 + 8);
        assert_eq!(&bytes[40..44], &8u32.to_le_bytes());
        assert_eq!(&bytes[4..8], &44u32.to_le_bytes());
        assert_eq!(i16::from_le_bytes([bytes[48], bytes[49]]), -32767);
    }
}
