//! Reading what an audio file is: codec, sample rate, channels, exact duration, tags.
//!
//! Duration is counted from the stream itself (every packet's length), not estimated from a
//! header, so a VBR MP3 without a Xing header still gets the right length. The same walk finds
//! truncated files: a stream whose packets stop short of the length its header declares, or an
//! Ogg stream whose last page is cut off, is rejected. PCM and FLAC, whose headers state the
//! exact frame count, are instead checked to end exactly there (the walk is the fallback). The
//! first packets are decoded, so a file that merely looks like audio is rejected too.

use std::fs::File;
use std::io::{Cursor, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use symphonia::core::codecs::{CODEC_TYPE_NULL, CodecParameters, Decoder, DecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::{FormatOptions, FormatReader, SeekMode, SeekTo};
use symphonia::core::io::{MediaSource, MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::{MetadataOptions, MetadataRevision, StandardTagKey};
use symphonia::core::probe::Hint;

use super::MediaError;

/// File extensions that [`probe_file`] is attempted on when scanning a folder.
pub const AUDIO_EXTENSIONS: &[&str] = &["mp3", "flac", "ogg", "oga", "wav", "wave", "m4a", "mp4", "aac", "alac", "caf"];
/// How many leading packets are decoded as a sanity check.
const DECODE_CHECK_PACKETS: usize = 8;

/// Cheaply shareable file bytes that symphonia can read from.
#[derive(Clone)]
pub struct SharedBytes(pub Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// What [`probe_file`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MediaInfo {
    /// Codec short name (`flac`, `mp3`, `vorbis`, `aac`, `alac`, `pcm_s16le`, …).
    pub codec: String,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u16,
    /// Audio frames (samples per channel), after encoder delay and padding are trimmed.
    pub frames: u64,
    /// Playing time in milliseconds.
    pub duration_ms: u64,
    /// `TITLE` tag.
    pub title: Option<String>,
    /// Track number tag.
    pub track_number: Option<u32>,
    /// Album tag.
    pub album: Option<String>,
    /// Artist tag.
    pub artist: Option<String>,
    /// Date tag as written.
    pub date: Option<String>,
}

/// Opens a symphonia format reader over in-memory bytes.
pub fn open_reader(bytes: SharedBytes, ext: Option<&str>) -> Result<Box<dyn FormatReader>, MediaError> {
    let (format, _) = open_source(Box::new(Cursor::new(bytes)), ext, false)?;
    Ok(format)
}

/// Probes `source` (with the extension `ext` as a hint): the format reader, and the
/// container's outer metadata (ID3v2 and the like).
pub(super) fn open_source(
    source: Box<dyn MediaSource>,
    ext: Option<&str>,
    gapless: bool,
) -> Result<(Box<dyn FormatReader>, Option<MetadataRevision>), MediaError> {
    let mss = MediaSourceStream::new(source, MediaSourceStreamOptions::default());
    let mut hint = Hint::new();
    if let Some(e) = ext {
        hint.with_extension(e);
    }
    let opts = FormatOptions { enable_gapless: gapless, ..FormatOptions::default() };
    let mut probed = symphonia::default::get_probe().format(&hint, mss, &opts, &MetadataOptions::default()).map_err(
        |e| match e {
            SymError::IoError(io) if io.kind() != std::io::ErrorKind::UnexpectedEof => {
                MediaError::Unreadable(io.to_string())
            }
            other => MediaError::NotAudio(other.to_string()),
        },
    )?;
    let outer = probed.metadata.get().and_then(|m| m.current().cloned());
    Ok((probed.format, outer))
}

/// The first audio track: its id and codec parameters.
pub(super) fn audio_track(format: &dyn FormatReader) -> Result<(u32, CodecParameters), MediaError> {
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| MediaError::NotAudio("no audio track".into()))?;
    Ok((track.id, track.codec_params.clone()))
}

/// A decoder for a track's codec.
pub(super) fn make_decoder(params: &CodecParameters) -> Result<Box<dyn Decoder>, MediaError> {
    symphonia::default::get_codecs()
        .make(params, &DecoderOptions::default())
        .map_err(|e| MediaError::Unsupported(e.to_string()))
}

/// Up to `len` bytes of `file` from `offset` (fewer at the end, none on a read error): the few
/// bytes read outside symphonia.
fn read_at(file: &mut File, offset: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    if file.seek(SeekFrom::Start(offset)).is_ok() {
        let _ = file.take(len as u64).read_to_end(&mut out);
    }
    out
}

/// Probes and checks an audio file on disk, reading only what it needs: a PCM or FLAC file
/// whose header states its length is checked at its start and its end, other formats are
/// walked packet by packet. `ext` is a hint (the file's extension).
pub fn probe_file(path: &Path, ext: Option<&str>) -> Result<MediaInfo, MediaError> {
    let open = || File::open(path).map_err(|e| MediaError::Unreadable(e.to_string()));
    let mut file = open()?;
    if let Some("ogg" | "oga") = ext {
        check_ogg_complete(&mut file)?;
    }
    let has_vbr_header = mp3_has_length_header(&mut file);
    // Gapless mode trims to a length symphonia may have *estimated* (a VBR MP3 without a Xing
    // header); we count untrimmed packets and subtract the encoder's delay/padding ourselves.
    let (mut format, outer_meta) = open_source(Box::new(open()?), ext, false)?;
    let (track_id, params) = audio_track(format.as_ref())?;
    let codec = symphonia::default::get_codecs()
        .get_codec(params.codec)
        .map(|d| d.short_name.to_string())
        .ok_or_else(|| MediaError::Unsupported(format!("codec {:?}", params.codec)))?;
    let mut decoder = make_decoder(&params)?;
    let sample_rate = params.sample_rate.ok_or_else(|| MediaError::NotAudio("no sample rate".into()))?;
    let mut channels = params.channels.map(|c| c.count() as u16).unwrap_or(0);

    let mut info = MediaInfo { codec, sample_rate, ..MediaInfo::default() };
    // An MP3's declared length is only an estimate unless a Xing/Info/VBRI header gave it.
    let declared = params.n_frames.filter(|_| info.codec != "mp3" || has_vbr_header);
    let (mut counted, mut decoded, mut longest) = (0u64, 0usize, 0u64);
    let mut walk = true;
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(SymError::ResetRequired) => break,
            Err(e) => return Err(MediaError::Corrupt(format!("after {counted} frames: {e}"))),
        };
        if packet.track_id() != track_id {
            continue;
        }
        counted += packet.dur;
        longest = longest.max(packet.dur);
        if decoded < DECODE_CHECK_PACKETS {
            decoded += 1;
            match decoder.decode(&packet) {
                Ok(buf) => channels = buf.spec().channels.count() as u16,
                Err(SymError::DecodeError(e)) => return Err(MediaError::Corrupt(format!("undecodable audio: {e}"))),
                Err(e) => return Err(MediaError::Corrupt(e.to_string())),
            }
        } else if walk && let Some(n) = declared.filter(|_| exact_header(&info.codec)) {
            // Every frame of PCM is its bytes, and FLAC's STREAMINFO counts the samples
            // exactly: checking the stream really ends where declared stands for the walk.
            walk = false;
            if ends_where_declared(format.as_mut(), decoder.as_mut(), track_id, n) {
                counted = n;
                break;
            }
            // Not where it should be: count every packet from the start after all.
            (format, _) = open_source(Box::new(open()?), ext, false)?;
            (counted, longest) = (0, 0);
        }
    }
    if decoded == 0 || counted == 0 {
        return Err(MediaError::NotAudio("no audio packets".into()));
    }
    if let Some(declared) = declared {
        // Packets shorter than the header promises by more than one packet: the file was cut.
        if counted + longest < declared {
            return Err(MediaError::Truncated { declared, found: counted, sample_rate });
        }
    }
    let trim = u64::from(params.delay.unwrap_or(0)) + u64::from(params.padding.unwrap_or(0));
    info.frames = counted.saturating_sub(trim);
    info.channels = channels;
    info.duration_ms = info.frames * 1000 / u64::from(sample_rate.max(1));
    for rev in outer_meta.iter().chain(format.metadata().current()) {
        apply_tags(&mut info, rev);
    }
    Ok(info)
}

/// Codecs whose header states the exact frame count.
fn exact_header(codec: &str) -> bool {
    codec == "flac" || codec.starts_with("pcm_")
}

/// Seeks to the last declared frame and reads to the end of the stream: true if the packets
/// end exactly at `declared` and the last one decodes.
fn ends_where_declared(format: &mut dyn FormatReader, decoder: &mut dyn Decoder, track_id: u32, declared: u64) -> bool {
    let to = SeekTo::TimeStamp { ts: declared.saturating_sub(1), track_id };
    if declared == 0 || format.seek(SeekMode::Accurate, to).is_err() {
        return false;
    }
    decoder.reset();
    let mut last = None;
    // A handful of packets at most follow the seek point; many more means a wrong header.
    for _ in 0..64 {
        match format.next_packet() {
            Ok(p) if p.track_id() == track_id => last = Some(p),
            Ok(_) => {}
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return last.is_some_and(|p| p.ts + p.dur == declared && decoder.decode(&p).is_ok());
            }
            Err(_) => return false,
        }
    }
    false
}

fn apply_tags(info: &mut MediaInfo, rev: &MetadataRevision) {
    for tag in rev.tags() {
        let value = tag.value.to_string().trim().to_string();
        if value.is_empty() {
            continue;
        }
        match tag.std_key {
            Some(StandardTagKey::TrackTitle) => info.title.get_or_insert(value),
            Some(StandardTagKey::Album) => info.album.get_or_insert(value),
            Some(StandardTagKey::Artist | StandardTagKey::AlbumArtist) => info.artist.get_or_insert(value),
            Some(StandardTagKey::Date | StandardTagKey::ReleaseDate | StandardTagKey::OriginalDate) => {
                info.date.get_or_insert(value)
            }
            Some(StandardTagKey::TrackNumber) => {
                let digits: String = value.chars().take_while(char::is_ascii_digit).collect();
                if let Ok(n) = digits.parse() {
                    info.track_number.get_or_insert(n);
                }
                continue;
            }
            _ => continue,
        };
    }
}

/// True if the bytes start (after an ID3v2 tag) with an MPEG audio frame carrying a Xing,
/// Info or VBRI header, i.e. the stream states its exact length.
fn mp3_has_length_header(file: &mut File) -> bool {
    let head = read_at(file, 0, 10);
    let mut start = 0u64;
    if head.len() == 10 && &head[..3] == b"ID3" {
        let size = head[6..10].iter().fold(0u64, |acc, b| (acc << 7) | u64::from(b & 0x7f));
        start = 10 + size + if head[5] & 0x10 != 0 { 10 } else { 0 };
    }
    let window = read_at(file, start, 4096);
    let Some(sync) = window.windows(2).position(|w| w[0] == 0xff && w[1] & 0xe0 == 0xe0) else { return false };
    let frame = &window[sync..window.len().min(sync + 200)];
    frame.windows(4).any(|w| w == b"Xing" || w == b"Info" || w == b"VBRI")
}

/// An Ogg file must end with a complete page; a cut-off last page means a truncated file.
fn check_ogg_complete(file: &mut File) -> Result<(), MediaError> {
    // The last page is at most 27 + 255 + 255 * 255 bytes long.
    let len = file.metadata().map_or(0, |m| m.len());
    let from = len.saturating_sub(27 + 255 + 255 * 255);
    let bytes = read_at(file, from, (len - from) as usize);
    let len = bytes.len();
    let mut at = len;
    while let Some(start) = bytes[..at].windows(4).rposition(|w| w == b"OggS") {
        at = start;
        let Some(header) = bytes.get(start..start + 27) else { continue };
        let segments = usize::from(header[26]);
        let Some(table) = bytes.get(start + 27..start + 27 + segments) else { continue };
        let body: usize = table.iter().map(|&b| usize::from(b)).sum();
        if start + 27 + segments + body == len {
            return Ok(());
        }
    }
    Err(MediaError::Truncated { declared: 0, found: 0, sample_rate: 0 })
}
