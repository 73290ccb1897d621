//! The speakers, through cpal (cargo feature `speakers`; on Linux it needs ALSA's
//! development files, Debian's `libasound2-dev`).
//!
//! cpal calls back on its own thread for samples. The sink fills a bounded buffer (200 ms)
//! that the callback drains; when the callback finds it empty while playing, it plays silence
//! and counts a stutter. A cpal stream is not `Send` everywhere, so it lives on a thread of
//! its own, rebuilt when a track with another format starts.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};

use super::decode::Spec;
use super::sink::{Sink, SinkError};

const BUFFER: Duration = Duration::from_millis(200);

#[derive(Default)]
struct Ring {
    samples: Mutex<VecDeque<f32>>,
    room: Condvar,
    paused: AtomicBool,
    /// Set by the writer once audio flows; cleared when it drains on purpose.
    flowing: AtomicBool,
    starved: AtomicBool,
    stutters: AtomicU64,
}

impl Ring {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<f32>> {
        self.samples.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// cpal's callback: hand out samples, or silence.
    fn fill(&self, out: &mut [f32]) {
        if self.paused.load(Ordering::Relaxed) {
            out.fill(0.0);
            return;
        }
        let mut q = self.lock();
        let n = q.len().min(out.len());
        for (o, s) in out.iter_mut().zip(q.drain(..n)) {
            *o = s;
        }
        out[n..].fill(0.0);
        let short = n < out.len() && self.flowing.load(Ordering::Relaxed);
        if short && !self.starved.swap(true, Ordering::Relaxed) {
            self.stutters.fetch_add(1, Ordering::Relaxed);
        } else if !short {
            self.starved.store(false, Ordering::Relaxed);
        }
        drop(q);
        self.room.notify_all();
    }
}

/// The default output device.
pub struct Speakers {
    ring: Arc<Ring>,
    spec: Option<Spec>,
    streams: mpsc::Sender<(Spec, mpsc::Sender<Result<(), String>>)>,
}

impl Speakers {
    /// Opens the default output device (the stream starts with the first track).
    pub fn open() -> Result<Self, SinkError> {
        let host = cpal::default_host();
        let device = host.default_output_device().ok_or_else(|| SinkError::Device("no output device".into()))?;
        let ring = Arc::new(Ring::default());
        let (tx, rx) = mpsc::channel::<(Spec, mpsc::Sender<Result<(), String>>)>();
        let r = ring.clone();
        std::thread::Builder::new()
            .name("busker-speakers".into())
            .spawn(move || {
                let mut _stream = None;
                for (spec, ack) in rx {
                    let config = cpal::StreamConfig {
                        channels: spec.channels,
                        sample_rate: spec.rate,
                        buffer_size: cpal::BufferSize::Default,
                    };
                    let ring = r.clone();
                    let built = device
                        .build_output_stream(
                            config,
                            move |out: &mut [f32], _: &cpal::OutputCallbackInfo| ring.fill(out),
                            |e| tracing::warn!("audio device: {e}"),
                            None,
                        )
                        .and_then(|s| s.play().map(|()| s));
                    match built {
                        Ok(s) => {
                            _stream = Some(s);
                            let _ = ack.send(Ok(()));
                        }
                        Err(e) => {
                            _stream = None;
                            let _ = ack.send(Err(e.to_string()));
                        }
                    }
                }
            })
            .map_err(|e| SinkError::Device(e.to_string()))?;
        Ok(Self { ring, spec: None, streams: tx })
    }

    fn capacity(&self) -> usize {
        self.spec.map_or(0, |s| (s.rate as usize * usize::from(s.channels)) / 5)
    }

    fn drain(&self) {
        let mut q = self.ring.lock();
        while !q.is_empty() && !self.ring.paused.load(Ordering::Relaxed) {
            q = self.ring.room.wait_timeout(q, BUFFER).map(|r| r.0).unwrap_or_else(|e| e.into_inner().0);
        }
    }
}

impl Sink for Speakers {
    fn start(&mut self, spec: Spec) -> Result<(), SinkError> {
        if self.spec == Some(spec) {
            return Ok(());
        }
        self.drain();
        self.ring.flowing.store(false, Ordering::Relaxed);
        let (ack, done) = mpsc::channel();
        self.streams.send((spec, ack)).map_err(|_| SinkError::Device("the audio thread stopped".into()))?;
        done.recv_timeout(Duration::from_secs(5))
            .map_err(|_| SinkError::Device("the audio device did not start".into()))?
            .map_err(SinkError::Device)?;
        self.spec = Some(spec);
        Ok(())
    }

    fn write(&mut self, samples: &[f32]) -> Result<(), SinkError> {
        let cap = self.capacity().max(samples.len());
        let mut q = self.ring.lock();
        while q.len() + samples.len() > cap {
            q = self.ring.room.wait_timeout(q, BUFFER).map(|r| r.0).unwrap_or_else(|e| e.into_inner().0);
        }
        q.extend(samples.iter().copied());
        self.ring.flowing.store(true, Ordering::Relaxed);
        Ok(())
    }

    fn pause(&mut self, paused: bool) {
        self.ring.paused.store(paused, Ordering::Relaxed);
        self.ring.room.notify_all();
    }

    fn discard(&mut self) {
        self.ring.flowing.store(false, Ordering::Relaxed);
        self.ring.lock().clear();
    }

    fn buffered_ms(&self) -> u64 {
        let per_sec = self.spec.map_or(1, |s| u64::from(s.rate) * u64::from(s.channels)).max(1);
        self.ring.lock().len() as u64 * 1000 / per_sec
    }

    fn stutters(&self) -> u64 {
        self.ring.stutters.load(Ordering::Relaxed)
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.drain();
        self.ring.flowing.store(false, Ordering::Relaxed);
        Ok(())
    }

    fn describe(&self) -> String {
        "speakers".into()
    }
}
