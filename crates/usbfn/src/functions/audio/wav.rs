//! WAV (RIFF, PCM) files: the microphone's `source=FILE.wav`, the speaker's `sink=FILE.wav`
//! (whose header is valid at every moment, so a crash leaves a playable file), and the
//! measurements `usbfn wav` prints (dominant frequency, length, aligned comparison).

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Largest WAV file the microphone loads into memory (bytes).
pub const MAX_SOURCE_BYTES: u64 = 64 << 20;
/// Largest data chunk a sink file may reach: the RIFF size field is 32 bits.
pub const MAX_SINK_DATA: u64 = u32::MAX as u64 - 36;
/// Size of the canonical header this module writes.
pub const HEADER_LEN: usize = 44;

/// A PCM format.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct WavFormat {
    /// Frames per second.
    pub rate: u32,
    /// Channels (1..=8).
    pub channels: u16,
    /// Bits per sample: 16 or 24 (little-endian, signed, packed).
    pub bits: u16,
}

impl WavFormat {
    /// Bytes per sample.
    pub fn sample_bytes(&self) -> usize {
        usize::from(self.bits / 8)
    }

    /// Bytes per frame.
    pub fn frame_bytes(&self) -> usize {
        self.sample_bytes() * usize::from(self.channels)
    }
}

/// A WAV file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// The file is larger than a limit.
    #[error("{path}: {size} bytes, more than the {limit}-byte limit ({what})")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
        /// Which limit.
        what: &'static str,
    },
    /// Not a WAV file this module reads.
    #[error("not a usable WAV file: {0}")]
    Format(String),
}

/// A parsed WAV file: its format and its data chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wav {
    /// The format.
    pub format: WavFormat,
    /// The data chunk (whole frames only).
    pub data: Vec<u8>,
}

impl Wav {
    /// Read and parse `path` (at most [`MAX_SOURCE_BYTES`]).
    pub fn read(path: &Path) -> Result<Wav, WavError> {
        let io = |source| WavError::Io {
            path: path.to_owned(),
            source,
        };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > MAX_SOURCE_BYTES {
            return Err(WavError::TooLarge {
                path: path.to_owned(),
                size,
                limit: MAX_SOURCE_BYTES,
                what: "a WAV file read into memory",
            });
        }
        let bytes = std::fs::read(path).map_err(io)?;
        Wav::parse(&bytes)
    }

    /// Parse a WAV file's bytes: RIFF/WAVE, a `fmt ` chunk of PCM (format 1, or
    /// WAVE_FORMAT_EXTENSIBLE with the PCM subformat) at 16 or 24 bits, and a `data` chunk.
    /// A data chunk longer than the file (a writer that crashed) is cut to what is there.
    pub fn parse(bytes: &[u8]) -> Result<Wav, WavError> {
        let bad = |m: &str| WavError::Format(m.to_owned());
        if bytes.get(0..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
            return Err(bad("no RIFF/WAVE header"));
        }
        let mut at = 12usize;
        let mut format = None;
        while let Some(head) = bytes.get(at..at + 8) {
            let id = &head[..4];
            let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
            let body_start = at + 8;
            let body_end = body_start.saturating_add(len).min(bytes.len());
            let body = bytes.get(body_start..body_end).unwrap_or(&[]);
            match id {
                b"fmt " => format = Some(parse_fmt(body)?),
                b"data" => {
                    let format = format.ok_or_else(|| bad("data chunk before the fmt chunk"))?;
                    let whole = body.len() - body.len() % format.frame_bytes();
                    return Ok(Wav {
                        format,
                        data: body.get(..whole).unwrap_or(&[]).to_vec(),
                    });
                }
                _ => {}
            }
            // Chunks are padded to an even length.
            at = body_start.saturating_add(len).saturating_add(len & 1);
        }
        Err(bad("no data chunk"))
    }

    /// Frames in the file.
    pub fn frames(&self) -> usize {
        self.data.len() / self.format.frame_bytes().max(1)
    }

    /// Sample `channel` of frame `frame`, scaled to 24 bits.
    pub fn sample(&self, frame: usize, channel: usize) -> i32 {
        let f = self.format;
        let at = frame * f.frame_bytes() + channel * f.sample_bytes();
        read_sample(self.data.get(at..).unwrap_or(&[]), f.bits)
    }

    /// Channel `channel` as 24-bit samples.
    pub fn channel(&self, channel: usize) -> Vec<i32> {
        (0..self.frames())
            .map(|i| self.sample(i, channel))
            .collect()
    }
}

fn parse_fmt(body: &[u8]) -> Result<WavFormat, WavError> {
    let bad = |m: String| WavError::Format(m);
    let u16_at = |i: usize| body.get(i..i + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let tag = u16_at(0).ok_or_else(|| bad("fmt chunk shorter than 16 bytes".into()))?;
    let channels = u16_at(2).unwrap_or(0);
    let rate = body
        .get(4..8)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0);
    let bits = u16_at(14).ok_or_else(|| bad("fmt chunk shorter than 16 bytes".into()))?;
    // WAVE_FORMAT_EXTENSIBLE: the subformat GUID starts with the format tag.
    let pcm = tag == 1 || (tag == 0xfffe && u16_at(24) == Some(1));
    if !pcm {
        return Err(bad(format!("format tag {tag:#06x}: only PCM is read")));
    }
    if bits != 16 && bits != 24 {
        return Err(bad(format!("{bits} bits per sample: 16 or 24 are read")));
    }
    if !(1..=8).contains(&channels) || !(1..=384_000).contains(&rate) {
        return Err(bad(format!(
            "{channels} channels at {rate} Hz: 1..=8 channels, 1..=384000 Hz are read"
        )));
    }
    Ok(WavFormat {
        rate,
        channels,
        bits,
    })
}

/// A little-endian sample of `bits` (16 or 24) from the front of `b`, scaled to 24 bits
/// (0 when `b` is short).
pub fn read_sample(b: &[u8], bits: u16) -> i32 {
    match (bits, b) {
        (16, [lo, hi, ..]) => i32::from(i16::from_le_bytes([*lo, *hi])) << 8,
        (24, [a, b, c, ..]) => i32::from_le_bytes([0, *a, *b, *c]) >> 8,
        _ => 0,
    }
}

/// `x` rounded toward zero to a sample (saturating: `as` from a float clamps).
#[allow(clippy::cast_possible_truncation)]
pub fn to_sample(x: f64) -> i32 {
    x as i32
}

/// Append a 24-bit-scaled sample as `bits` (16 or 24) little-endian bytes (clamped).
pub fn push_sample(out: &mut Vec<u8>, sample: i32, bits: u16) {
    let s = sample.clamp(-(1 << 23), (1 << 23) - 1);
    if bits == 16 {
        out.extend_from_slice(&i16::try_from(s >> 8).unwrap_or(0).to_le_bytes());
    } else {
        out.extend_from_slice(&s.to_le_bytes()[..3]);
    }
}

/// The canonical 44-byte header for `data_len` bytes of `format`.
pub fn header(format: WavFormat, data_len: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    let block = u16::try_from(format.frame_bytes()).unwrap_or(u16::MAX);
    let byte_rate = format.rate.saturating_mul(u32::from(block));
    let mut w = Vec::with_capacity(HEADER_LEN);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&data_len.saturating_add(36).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&format.channels.to_le_bytes());
    w.extend_from_slice(&format.rate.to_le_bytes());
    w.extend_from_slice(&byte_rate.to_le_bytes());
    w.extend_from_slice(&block.to_le_bytes());
    w.extend_from_slice(&format.bits.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data_len.to_le_bytes());
    h.copy_from_slice(&w);
    h
}

/// A WAV file being written: data is appended, then the header's sizes are updated, so the
/// header never claims more than is on disk.
#[derive(Debug)]
pub struct WavWriter {
    file: File,
    path: PathBuf,
    format: WavFormat,
    data_len: u64,
}

impl WavWriter {
    /// Create (or truncate) `path` with an empty data chunk.
    pub fn create(path: &Path, format: WavFormat) -> Result<WavWriter, WavError> {
        let mut file = File::create(path).map_err(|source| WavError::Io {
            path: path.to_owned(),
            source,
        })?;
        file.write_all(&header(format, 0))
            .map_err(|source| WavError::Io {
                path: path.to_owned(),
                source,
            })?;
        Ok(WavWriter {
            file,
            path: path.to_owned(),
            format,
            data_len: 0,
        })
    }

    /// The format in the header.
    pub fn format(&self) -> WavFormat {
        self.format
    }

    /// Data bytes written.
    pub fn data_len(&self) -> u64 {
        self.data_len
    }

    /// Change the header's format; only while no data has been written.
    pub fn set_format(&mut self, format: WavFormat) -> Result<bool, WavError> {
        if self.data_len != 0 || format == self.format {
            return Ok(format == self.format);
        }
        self.format = format;
        self.rewrite_header()?;
        Ok(true)
    }

    /// Append whole frames; more than [`MAX_SINK_DATA`] in all is refused.
    pub fn append(&mut self, data: &[u8]) -> Result<(), WavError> {
        let len = data.len() as u64;
        if self.data_len + len > MAX_SINK_DATA {
            return Err(WavError::TooLarge {
                path: self.path.clone(),
                size: self.data_len + len,
                limit: MAX_SINK_DATA,
                what: "a WAV data chunk (32-bit sizes)",
            });
        }
        let io = |source| WavError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.seek(SeekFrom::End(0)).map_err(io)?;
        self.file.write_all(data).map_err(io)?;
        self.data_len += len;
        self.rewrite_header()
    }

    fn rewrite_header(&mut self) -> Result<(), WavError> {
        let len = u32::try_from(self.data_len).unwrap_or(u32::MAX);
        let h = header(self.format, len);
        let io = |source| WavError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.seek(SeekFrom::Start(0)).map_err(io)?;
        self.file.write_all(&h).map_err(io)?;
        Ok(())
    }
}

/// What [`analyze`] measures on one channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Analysis {
    /// Frames in the file.
    pub frames: usize,
    /// Frames / rate.
    pub seconds: f64,
    /// Frames before the first sample above the silence threshold.
    pub leading_silence: usize,
    /// The dominant frequency by interpolated rising zero crossings (with hysteresis), Hz;
    /// 0 when there are fewer than two.
    pub frequency: f64,
    /// Largest absolute sample, as a fraction of full scale.
    pub peak: f64,
}

/// |sample| (24-bit scale) above which a sample is not silence (-60 dBFS).
pub const SILENCE: i32 = 1 << 13;

/// Measure channel 0 of `wav`.
pub fn analyze(wav: &Wav) -> Analysis {
    let s = wav.channel(0);
    let rate = f64::from(wav.format.rate.max(1));
    let leading_silence = s.iter().position(|v| v.abs() > SILENCE).unwrap_or(s.len());
    let peak = s.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
    // Rising crossings of zero after the signal was below -SILENCE/2 (hysteresis keeps noise
    // near zero from counting twice), placed by linear interpolation.
    let mut armed = false;
    let (mut first, mut last, mut count) = (0.0f64, 0.0f64, 0usize);
    for (i, pair) in s.windows(2).enumerate() {
        let (a, b) = (pair[0], pair[1]);
        if a < -SILENCE / 2 {
            armed = true;
        }
        if armed && a < 0 && b >= 0 {
            let t = i as f64 + f64::from(a).abs() / (f64::from(b) - f64::from(a)).max(1.0);
            if count == 0 {
                first = t;
            }
            last = t;
            count += 1;
            armed = false;
        }
    }
    let frequency = if count >= 2 && last > first {
        (count - 1) as f64 * rate / (last - first)
    } else {
        0.0
    };
    Analysis {
        frames: s.len(),
        seconds: s.len() as f64 / rate,
        leading_silence,
        frequency,
        peak: f64::from(peak) / f64::from(1 << 23),
    }
}

/// What [`compare`] finds between a reference and a recording of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// Frames of the reference.
    pub reference_frames: usize,
    /// Frames of the recording.
    pub recording_frames: usize,
    /// Frame of the recording where the reference's frame 0 is.
    pub offset: i64,
    /// Frames compared (the reference's middle: without its first and last 1 %).
    pub compared: usize,
    /// Samples (all channels) equal in the compared frames.
    pub equal: usize,
    /// Samples compared.
    pub samples: usize,
    /// Pearson correlation of the compared samples.
    pub correlation: f64,
}

/// Align `recording` to `reference` (by the first non-silent sample of each, refined by the
/// best exact match within ±`search` frames) and compare the reference's middle.
pub fn compare(reference: &Wav, recording: &Wav, search: usize) -> Result<Comparison, String> {
    if reference.format.channels != recording.format.channels {
        return Err(format!(
            "{} channels against {}",
            reference.format.channels, recording.format.channels
        ));
    }
    let channels = usize::from(reference.format.channels);
    let a = reference.channel(0);
    let b = recording.channel(0);
    let onset = |s: &[i32]| s.iter().position(|v| v.abs() > SILENCE);
    let (Some(oa), Some(ob)) = (onset(&a), onset(&b)) else {
        return Err("a file is all silence".to_owned());
    };
    let coarse = ob as i64 - oa as i64;
    let window = 4096.min(a.len().saturating_sub(oa));
    // The recording's frame for the reference's frame `i` at `offset`.
    let at = |i: usize, offset: i64| {
        i64::try_from(i)
            .ok()
            .and_then(|i| usize::try_from(i + offset).ok())
    };
    let matches = |offset: i64| {
        (oa..oa + window)
            .filter(|&i| at(i, offset).and_then(|j| b.get(j)) == a.get(i))
            .count()
    };
    let span = search as i64;
    let offset = (coarse - span..=coarse + span)
        .max_by_key(|&o| (matches(o), -(o - coarse).abs()))
        .unwrap_or(coarse);
    let margin = a.len() / 100;
    let (mut equal, mut samples, mut compared) = (0usize, 0usize, 0usize);
    let (mut sx, mut sy, mut sxx, mut syy, mut sxy) = (0f64, 0f64, 0f64, 0f64, 0f64);
    for i in margin..a.len().saturating_sub(margin) {
        let Some(j) = at(i, offset).filter(|j| *j < recording.frames()) else {
            continue;
        };
        compared += 1;
        for c in 0..channels {
            let x = f64::from(reference.sample(i, c));
            let y = f64::from(recording.sample(j, c));
            samples += 1;
            if x == y {
                equal += 1;
            }
            sx += x;
            sy += y;
            sxx += x * x;
            syy += y * y;
            sxy += x * y;
        }
    }
    let n = samples.max(1) as f64;
    let cov = sxy - sx * sy / n;
    let var = (sxx - sx * sx / n) * (syy - sy * sy / n);
    let correlation = if var > 0.0 { cov / var.sqrt() } else { 0.0 };
    Ok(Comparison {
        reference_frames: a.len(),
        recording_frames: b.len(),
        offset,
        compared,
        equal,
        samples,
        correlation,
    })
}

/// A test signal: `frames` frames of `format`, a sine of `hz` (amplitude 1/2) or, with
/// `hz == 0`, seeded pseudo-random noise (amplitude 1/4), the same in every channel but
/// channel `c` offset by `c` frames so channels cannot be swapped unseen.
pub fn test_signal(format: WavFormat, frames: usize, hz: f64) -> Vec<u8> {
    let mut out = Vec::with_capacity(frames * format.frame_bytes());
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut noise = Vec::with_capacity(frames + 8);
    for _ in 0..frames + usize::from(format.channels) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        noise.push(((state >> 40) as i32 & 0xff_ffff) - (1 << 23));
    }
    for i in 0..frames {
        for c in 0..usize::from(format.channels) {
            let v = if hz > 0.0 {
                let t = i as f64 / f64::from(format.rate);
                to_sample(f64::from(1 << 22) * (2.0 * std::f64::consts::PI * hz * t).sin())
            } else {
                noise.get(i + c).copied().unwrap_or(0) / 4
            };
            push_sample(&mut out, v, format.bits);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: WavFormat = WavFormat {
        rate: 48_000,
        channels: 2,
        bits: 16,
    };

    #[test]
    fn writer_keeps_a_valid_header_and_reader_reads_it() {
        let dir = std::env::temp_dir().join(format!("usbfn-wav-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("sink.wav");
        let mut w = WavWriter::create(&path, F).expect("create");
        let empty = Wav::read(&path).expect("valid when empty");
        assert_eq!((empty.format, empty.frames()), (F, 0));
        let data = test_signal(F, 480, 1000.0);
        w.append(&data[..960]).expect("append");
        assert_eq!(Wav::read(&path).expect("valid").frames(), 240);
        w.append(&data[960..]).expect("append");
        let back = Wav::read(&path).expect("valid");
        assert_eq!(back.data, data);
        assert_eq!(std::fs::metadata(&path).expect("size").len(), 44 + 1920);
        let f24 = WavFormat { bits: 24, ..F };
        assert!(!w.set_format(f24).expect("no change after data"));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn parse_refuses_what_it_cannot_read() {
        let mut h = header(F, 8).to_vec();
        h.extend_from_slice(&[1, 0, 2, 0, 3, 0, 4, 0]);
        let w = Wav::parse(&h).expect("valid");
        assert_eq!(w.sample(1, 1), 4 << 8);
        let mut float = h.clone();
        float[20] = 3;
        assert!(matches!(Wav::parse(&float), Err(WavError::Format(_))));
        let mut bits8 = h.clone();
        bits8[34] = 8;
        assert!(Wav::parse(&bits8).is_err());
        assert!(Wav::parse(b"RIFF").is_err());
        assert!(Wav::parse(&h[..36]).is_err(), "no data chunk");
        // A data chunk claiming more than the file has: what is there, whole frames.
        let mut cut = h.clone();
        cut.truncate(44 + 6);
        assert_eq!(Wav::parse(&cut).expect("cut").frames(), 1);
    }

    #[test]
    fn samples_convert_between_16_and_24_bits() {
        let mut out = Vec::new();
        push_sample(&mut out, -(1 << 23), 16);
        push_sample(&mut out, 0x12_3456, 24);
        push_sample(&mut out, i32::MAX, 24);
        assert_eq!(out, [0x00, 0x80, 0x56, 0x34, 0x12, 0xff, 0xff, 0x7f]);
        assert_eq!(read_sample(&out[2..], 24), 0x12_3456);
        assert_eq!(read_sample(&out, 16), -(1 << 23));
        assert_eq!(read_sample(&[1], 16), 0);
    }

    #[test]
    fn analysis_measures_frequency_and_length() {
        let data = test_signal(F, 48_000, 1000.0);
        let mut silent = vec![0u8; 100 * F.frame_bytes()];
        silent.extend(data);
        let a = analyze(&Wav {
            format: F,
            data: silent,
        });
        assert_eq!(a.frames, 48_100);
        assert_eq!(a.leading_silence, 101);
        assert!((a.frequency - 1000.0).abs() < 0.5, "{}", a.frequency);
        assert!((a.peak - 0.5).abs() < 0.01);
    }

    #[test]
    fn comparison_aligns_and_finds_differences() {
        let reference = Wav {
            format: F,
            data: test_signal(F, 10_000, 0.0),
        };
        let mut data = vec![0u8; 333 * F.frame_bytes()];
        data.extend_from_slice(&reference.data);
        data.extend(vec![0u8; 50 * F.frame_bytes()]);
        let recording = Wav {
            format: F,
            data: data.clone(),
        };
        let c = compare(&reference, &recording, 64).expect("comparable");
        assert_eq!(c.offset, 333);
        assert_eq!(c.equal, c.samples);
        assert_eq!(c.compared, 9_800);
        assert!(c.correlation > 0.999_999);
        // One frame lost in the middle: most still equal, the correlation drops.
        let mid = (333 + 5_000) * F.frame_bytes();
        data.drain(mid..mid + F.frame_bytes());
        let c = compare(&reference, &Wav { format: F, data }, 64).expect("comparable");
        assert!(c.equal < c.samples && c.equal > c.samples / 3);
        assert!(c.correlation < 0.9, "{}", c.correlation);
    }
}
