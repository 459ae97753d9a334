//! `usbfn wav`: measure and make WAV files, for the audio function's checks where no Python
//! is available (the conformance guest): `analyze` (length, leading silence, dominant
//! frequency), `compare` (a recording aligned to its reference: equal samples and
//! correlation) and `generate` (a sine or seeded noise).

use std::path::PathBuf;

use anyhow::Context;
use usbfn::functions::audio::wav::{self, Wav, WavFormat};

/// `usbfn wav` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Frames, seconds, leading silence, peak and the dominant frequency of channel 0 (by
    /// interpolated zero crossings).
    Analyze {
        /// The WAV file (PCM, 16 or 24 bits).
        file: PathBuf,
        /// One JSON object instead of `key=value` words.
        #[arg(long)]
        json: bool,
    },
    /// Align RECORDING to REFERENCE (first non-silent sample, refined by the best exact
    /// match) and compare the reference's middle 98 %: equal samples and correlation.
    Compare {
        /// The file that was played.
        reference: PathBuf,
        /// What was recorded of it.
        recording: PathBuf,
        /// Frames either side of the first guess searched for the best alignment.
        #[arg(long, default_value_t = 256)]
        search: usize,
        /// One JSON object instead of `key=value` words.
        #[arg(long)]
        json: bool,
    },
    /// Write a test signal: `--sine HZ`, or seeded noise without it.
    Generate {
        /// The file to write.
        file: PathBuf,
        /// Seconds.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Frames per second.
        #[arg(long, default_value_t = 48_000)]
        rate: u32,
        /// Channels (1..=8).
        #[arg(long, default_value_t = 2)]
        channels: u16,
        /// Bits per sample (16 or 24).
        #[arg(long, default_value_t = 16)]
        bits: u16,
        /// A sine of this frequency instead of noise.
        #[arg(long)]
        sine: Option<f64>,
    },
}

/// Largest file `generate` writes, in seconds.
const MAX_GENERATE_SECONDS: f64 = 600.0;

/// Run `usbfn wav`.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Analyze { file, json } => {
            let w = Wav::read(&file)?;
            let a = wav::analyze(&w);
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "file": file.display().to_string(),
                        "rate": w.format.rate,
                        "channels": w.format.channels,
                        "bits": w.format.bits,
                        "frames": a.frames,
                        "seconds": a.seconds,
                        "leading_silence": a.leading_silence,
                        "frequency": a.frequency,
                        "peak": a.peak,
                    })
                );
            } else {
                println!(
                    "rate={} channels={} bits={} frames={} seconds={:.4} leading_silence={} \
                     frequency={:.2} peak={:.3}",
                    w.format.rate,
                    w.format.channels,
                    w.format.bits,
                    a.frames,
                    a.seconds,
                    a.leading_silence,
                    a.frequency,
                    a.peak
                );
            }
        }
        Command::Compare {
            reference,
            recording,
            search,
            json,
        } => {
            let a = Wav::read(&reference)?;
            let b = Wav::read(&recording)?;
            let c = wav::compare(&a, &b, search.min(48_000))
                .map_err(|e| anyhow::anyhow!("cannot compare: {e}"))?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "reference_frames": c.reference_frames,
                        "recording_frames": c.recording_frames,
                        "offset": c.offset,
                        "compared": c.compared,
                        "equal": c.equal,
                        "samples": c.samples,
                        "correlation": c.correlation,
                    })
                );
            } else {
                println!(
                    "reference_frames={} recording_frames={} offset={} compared={} equal={} \
                     samples={} correlation={:.6}",
                    c.reference_frames,
                    c.recording_frames,
                    c.offset,
                    c.compared,
                    c.equal,
                    c.samples,
                    c.correlation
                );
            }
        }
        Command::Generate {
            file,
            seconds,
            rate,
            channels,
            bits,
            sine,
        } => {
            anyhow::ensure!(
                (0.0..=MAX_GENERATE_SECONDS).contains(&seconds),
                "--seconds {seconds}: 0..={MAX_GENERATE_SECONDS} accepted"
            );
            anyhow::ensure!(bits == 16 || bits == 24, "--bits {bits}: 16 or 24 accepted");
            anyhow::ensure!(
                (1..=8).contains(&channels),
                "--channels {channels}: 1..=8 accepted"
            );
            anyhow::ensure!(
                (1..=384_000).contains(&rate),
                "--rate {rate}: 1..=384000 accepted"
            );
            let format = WavFormat {
                rate,
                channels,
                bits,
            };
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let frames = (seconds * f64::from(rate)).round() as usize;
            let data = wav::test_signal(format, frames, sine.unwrap_or(0.0));
            let mut w = wav::WavWriter::create(&file, format)?;
            w.append(&data)
                .with_context(|| format!("writing {}", file.display()))?;
        }
    }
    Ok(())
}
