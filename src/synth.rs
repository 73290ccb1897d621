//! Synthesised music for the demo, tests and benchmarks: plucked-string melodies over a bass
//! line (Karplus–Strong), deterministic from a seed, written as 16-bit PCM WAV.
//!
//! Real audio, made by the project, so nothing is downloaded and every run has the same input.

/// A small deterministic generator (xorshift64*); not for anything secret. Also used for
/// shuffling play queues and for reproducible property tests.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    /// A generator from any seed (0 included: the state is mixed and never zero).
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// A number in `0..n` (0 if `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One plucked string.
struct Pluck {
    line: Vec<f32>,
    at: usize,
    gain: f32,
}

impl Pluck {
    fn new(freq: f32, rate: u32, gain: f32, rng: &mut Rng) -> Self {
        let len = ((rate as f32 / freq) as usize).max(2);
        let line = (0..len).map(|_| (rng.below(2001) as f32 / 1000.0) - 1.0).collect();
        Self { line, at: 0, gain }
    }
    fn tick(&mut self) -> f32 {
        let n = self.line.len();
        let next = (self.at + 1) % n;
        let out = self.line[self.at];
        self.line[self.at] = 0.498 * (out + self.line[next]);
        self.at = next;
        out * self.gain
    }
}

fn midi_hz(note: i32) -> f32 {
    440.0 * 2f32.powf((note - 69) as f32 / 12.0)
}

/// Renders `seconds` of stereo music at `rate` Hz as interleaved 16-bit samples.
pub fn render(seed: u64, seconds: f32, rate: u32) -> Vec<i16> {
    let mut rng = Rng::new(seed);
    let scale = [0, 2, 4, 7, 9, 12, 14, 16];
    let root = 48 + rng.below(12) as i32;
    let beat = (rate as f32 * (0.18 + rng.below(10) as f32 * 0.02)) as usize;
    let frames = (seconds * rate as f32) as usize;
    let mut out = Vec::with_capacity(frames * 2);
    let mut voices: Vec<(Pluck, f32)> = Vec::new();
    for i in 0..frames {
        if i % beat == 0 {
            let step = i / beat;
            let note = root + 12 + scale[rng.below(scale.len() as u64) as usize];
            voices.push((Pluck::new(midi_hz(note), rate, 0.45, &mut rng), 0.3 + rng.below(40) as f32 / 100.0));
            if step.is_multiple_of(4) {
                let bass = root - 12 + [0, 5, 7, 3][(step / 4) % 4];
                voices.push((Pluck::new(midi_hz(bass), rate, 0.6, &mut rng), 0.5));
            }
            voices.retain(|(p, _)| p.line.iter().any(|s| s.abs() > 1e-3));
            voices.truncate(12);
        }
        let (mut l, mut r) = (0f32, 0f32);
        for (p, pan) in voices.iter_mut() {
            let s = p.tick();
            l += s * (1.0 - *pan);
            r += s * *pan;
        }
        out.push((l.clamp(-1.0, 1.0) * 20_000.0) as i16);
        out.push((r.clamp(-1.0, 1.0) * 20_000.0) as i16);
    }
    out
}

/// Encodes interleaved 16-bit samples as a canonical PCM WAV file.
pub fn wav(samples: &[i16], rate: u32, channels: u16) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut b = Vec::with_capacity(44 + data_len as usize);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * u32::from(channels) * 2).to_le_bytes());
    b.extend_from_slice(&(channels * 2).to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        b.extend_from_slice(&s.to_le_bytes());
    }
    b
}

/// A complete WAV file of `seconds` of music at 44.1 kHz stereo.
pub fn song_wav(seed: u64, seconds: f32) -> Vec<u8> {
    wav(&render(seed, seconds, 44_100), 44_100, 2)
}
