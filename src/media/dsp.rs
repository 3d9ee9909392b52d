//! Signal generation and analysis for 16 kHz signed 16-bit mono audio: test tones, DTMF
//! tones, RMS level, dominant frequency and DTMF detection. Pure functions, no I/O, so that
//! the emulator, the sidecar and the tests measure audio the same way.

use std::f64::consts::PI;

/// Sample rate of every call leg in this project (spec 6.1).
pub const SAMPLE_RATE: u32 = 16_000;
/// Samples in one 20 ms frame.
pub const SAMPLES_PER_FRAME: usize = 320;
/// Bytes in one 20 ms frame of s16le.
pub const BYTES_PER_FRAME: usize = 640;

/// The DTMF keypad: rows are the low group, columns the high group.
const DTMF_LOW: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
const DTMF_HIGH: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const DTMF_KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// The two frequencies of a DTMF digit, or `None` for a character that is not on the keypad.
pub fn dtmf_frequencies(digit: char) -> Option<(f64, f64)> {
    let digit = digit.to_ascii_uppercase();
    for (row, keys) in DTMF_KEYS.iter().enumerate() {
        for (col, key) in keys.iter().enumerate() {
            if *key == digit {
                return Some((DTMF_LOW[row], DTMF_HIGH[col]));
            }
        }
    }
    None
}

/// A continuous sine generator that keeps its phase across frames, so frame boundaries are
/// inaudible and frequency measurements stay exact.
#[derive(Debug, Clone)]
pub struct Tone {
    step: f64,
    phase: f64,
    amplitude: f64,
}

impl Tone {
    /// `level_dbfs` is the peak level relative to full scale (0 dBFS = 32767).
    pub fn new(frequency_hz: f64, level_dbfs: f64) -> Tone {
        Tone {
            step: 2.0 * PI * frequency_hz / f64::from(SAMPLE_RATE),
            phase: 0.0,
            amplitude: 32767.0 * 10f64.powf(level_dbfs / 20.0),
        }
    }

    pub fn next_sample(&mut self) -> i16 {
        let v = self.amplitude * self.phase.sin();
        self.phase += self.step;
        if self.phase > 2.0 * PI {
            self.phase -= 2.0 * PI;
        }
        v.round().clamp(-32768.0, 32767.0) as i16
    }

    /// Adds this tone to `out` (saturating), so two tones can be mixed into one buffer.
    pub fn mix_into(&mut self, out: &mut [i16]) {
        for s in out.iter_mut() {
            *s = s.saturating_add(self.next_sample());
        }
    }
}

/// Plays a string of DTMF digits as tones: `tone_ms` of each digit, then `gap_ms` of silence.
/// Unknown characters become pauses of the same length.
#[derive(Debug, Clone)]
pub struct DtmfSequence {
    digits: Vec<char>,
    index: usize,
    sample_in_slot: usize,
    tone_samples: usize,
    gap_samples: usize,
    current: Option<(Tone, Tone)>,
}

impl DtmfSequence {
    pub fn new(digits: &str, tone_ms: u32, gap_ms: u32) -> DtmfSequence {
        let per_ms = (SAMPLE_RATE / 1000) as usize;
        DtmfSequence {
            digits: digits.chars().collect(),
            index: 0,
            sample_in_slot: 0,
            tone_samples: tone_ms as usize * per_ms,
            gap_samples: gap_ms as usize * per_ms,
            current: None,
        }
    }

    pub fn finished(&self) -> bool {
        self.index >= self.digits.len()
    }

    /// Fills `out` with the next samples (silence once every digit has been played).
    pub fn fill(&mut self, out: &mut [i16]) {
        for s in out.iter_mut() {
            *s = self.next_sample();
        }
    }

    fn next_sample(&mut self) -> i16 {
        let Some(&digit) = self.digits.get(self.index) else {
            return 0;
        };
        if self.sample_in_slot == 0 {
            // -9 dBFS per tone keeps the sum of the pair below full scale.
            self.current =
                dtmf_frequencies(digit).map(|(lo, hi)| (Tone::new(lo, -9.0), Tone::new(hi, -9.0)));
        }
        let value = if self.sample_in_slot < self.tone_samples {
            match self.current.as_mut() {
                Some((lo, hi)) => lo.next_sample().saturating_add(hi.next_sample()),
                None => 0,
            }
        } else {
            0
        };
        self.sample_in_slot += 1;
        if self.sample_in_slot >= self.tone_samples + self.gap_samples {
            self.sample_in_slot = 0;
            self.index += 1;
        }
        value
    }
}

/// Little-endian bytes to samples; a trailing odd byte is ignored.
pub fn samples_from_le_bytes(bytes: &[u8], out: &mut Vec<i16>) {
    out.extend(
        bytes
            .chunks_exact(2)
            .map(|pair| i16::from_le_bytes([pair[0], pair[1]])),
    );
}

/// Samples to little-endian bytes into a fixed buffer (`out` must hold 2 bytes per sample).
pub fn samples_to_le_bytes(samples: &[i16], out: &mut [u8]) {
    for (s, pair) in samples.iter().zip(out.chunks_exact_mut(2)) {
        pair.copy_from_slice(&s.to_le_bytes());
    }
}

/// RMS level in dBFS, where a full-scale square wave is 0 dBFS and a full-scale sine is about
/// -3 dBFS. Digital silence gives `-120.0` rather than minus infinity, so it stays JSON-safe.
pub fn rms_dbfs(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return -120.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let rms = (sum / samples.len() as f64).sqrt();
    if rms < 1e-6 {
        return -120.0;
    }
    (20.0 * (rms / 32768.0).log10()).max(-120.0)
}

/// Power of one frequency in a block (Goertzel), normalised by the block length squared so
/// blocks of different sizes compare.
pub fn goertzel_power(samples: &[i16], frequency_hz: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let coeff = 2.0 * (2.0 * PI * frequency_hz / f64::from(SAMPLE_RATE)).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let n = samples.len() as f64;
    power / (n * n)
}

/// The dominant frequency of a block, in Hz, or `None` for silence or blocks shorter than
/// 10 ms. A zero-crossing count gives a first estimate; Goertzel scans around it, in
/// narrowing steps, refine it to well under 1 % for a clean tone. A coarse Goertzel scan of
/// the whole voice band backs up the zero-crossing estimate when the signal is not a pure
/// tone (e.g. DTMF pairs), where zero-crossings mislead.
pub fn dominant_frequency(samples: &[i16]) -> Option<f64> {
    if samples.len() < (SAMPLE_RATE / 100) as usize || rms_dbfs(samples) < -70.0 {
        return None;
    }
    // Analyse at most 1 s: longer blocks add cost, not precision that tests need.
    let block = &samples[..samples.len().min(SAMPLE_RATE as usize)];
    let crossings = block
        .windows(2)
        .filter(|w| (w[0] < 0) != (w[1] < 0))
        .count();
    let zc_estimate = crossings as f64 * f64::from(SAMPLE_RATE) / (2.0 * block.len() as f64);

    // Coarse scan in 25 Hz steps over 50 Hz..7.9 kHz.
    let mut best_f = 50.0;
    let mut best_p = 0.0;
    let mut f = 50.0;
    while f < 7900.0 {
        let p = goertzel_power(block, f);
        if p > best_p {
            best_p = p;
            best_f = f;
        }
        f += 25.0;
    }
    // Prefer the zero-crossing estimate when it sits on the same peak (pure tone).
    let zc_power = goertzel_power(block, zc_estimate);
    let mut centre = if zc_estimate > 50.0 && zc_power > best_p * 0.5 {
        zc_estimate
    } else {
        best_f
    };
    let mut step = 12.5;
    while step > 0.05 {
        let mut local_best = centre;
        let mut local_p = goertzel_power(block, centre);
        for k in [-4.0, -3.0, -2.0, -1.0, 1.0, 2.0, 3.0, 4.0] {
            let candidate = centre + k * step;
            if candidate <= 0.0 {
                continue;
            }
            let p = goertzel_power(block, candidate);
            if p > local_p {
                local_p = p;
                local_best = candidate;
            }
        }
        centre = local_best;
        step /= 4.0;
    }
    Some(centre)
}

/// Streaming DTMF detector for 16 kHz audio: 20 ms Goertzel blocks on the eight keypad
/// frequencies, a twist check, and a digit reported once when it has been present for two
/// consecutive blocks (40 ms). The same digit is reported again only after two blocks (40 ms,
/// the shortest inter-digit pause) without it: a single lost or late frame in the middle of a
/// tone is a dropout, not a second key press.
#[derive(Debug, Clone)]
pub struct DtmfDetector {
    block: Vec<i16>,
    last_block_digit: Option<char>,
    reported: Option<char>,
    blocks_without_digit: u32,
    digits: String,
}

impl Default for DtmfDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl DtmfDetector {
    pub fn new() -> DtmfDetector {
        DtmfDetector {
            block: Vec::with_capacity(SAMPLES_PER_FRAME),
            last_block_digit: None,
            reported: None,
            blocks_without_digit: 0,
            digits: String::new(),
        }
    }

    /// Feeds samples; returns digits completed by this call in order via [`Self::digits`].
    pub fn feed(&mut self, samples: &[i16]) {
        for &s in samples {
            self.block.push(s);
            if self.block.len() == SAMPLES_PER_FRAME {
                let digit = classify_block(&self.block);
                self.block.clear();
                self.on_block(digit);
            }
        }
    }

    fn on_block(&mut self, digit: Option<char>) {
        match digit {
            Some(d) => {
                self.blocks_without_digit = 0;
                if self.last_block_digit == Some(d) && self.reported != Some(d) {
                    self.digits.push(d);
                    self.reported = Some(d);
                }
            }
            None => {
                self.blocks_without_digit += 1;
                if self.blocks_without_digit >= 2 {
                    self.reported = None;
                }
            }
        }
        self.last_block_digit = digit;
    }

    /// Every digit detected so far.
    pub fn digits(&self) -> &str {
        &self.digits
    }
}

/// Detects DTMF digits in a whole recording.
pub fn detect_dtmf(samples: &[i16]) -> String {
    let mut d = DtmfDetector::new();
    d.feed(samples);
    d.digits
}

fn classify_block(block: &[i16]) -> Option<char> {
    let energy: f64 = block
        .iter()
        .map(|&s| f64::from(s) * f64::from(s))
        .sum::<f64>()
        / (block.len() as f64 * block.len() as f64);
    if rms_dbfs(block) < -45.0 {
        return None;
    }
    let low: Vec<f64> = DTMF_LOW.iter().map(|&f| goertzel_power(block, f)).collect();
    let high: Vec<f64> = DTMF_HIGH
        .iter()
        .map(|&f| goertzel_power(block, f))
        .collect();
    let (li, lp) = strongest(&low);
    let (hi, hp) = strongest(&high);
    // Each tone must stand out from the others of its group...
    let clear = |powers: &[f64], idx: usize, p: f64| {
        powers
            .iter()
            .enumerate()
            .all(|(i, &q)| i == idx || q * 6.0 < p)
    };
    if !clear(&low, li, lp) || !clear(&high, hi, hp) {
        return None;
    }
    // ...the two must be within 8 dB of each other (twist)...
    let ratio = if lp > hp { lp / hp } else { hp / lp };
    if ratio > 6.3 {
        return None;
    }
    // ...and together carry most of the block's energy (a sine of amplitude A has a
    // normalised Goertzel power of A^2/4 and a mean square of A^2/2).
    if (lp + hp) * 2.0 < energy * 0.5 {
        return None;
    }
    Some(DTMF_KEYS[li][hi])
}

fn strongest(powers: &[f64]) -> (usize, f64) {
    let mut best = (0, 0.0);
    for (i, &p) in powers.iter().enumerate() {
        if p > best.1 {
            best = (i, p);
        }
    }
    best
}

/// A summary of a recording, as `skype-sim ctl heard` reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AudioSummary {
    /// Length of everything received, silence included.
    pub seconds: f64,
    /// Length of the 20 ms frames louder than -50 dBFS.
    pub active_seconds: f64,
    /// Dominant frequency of the active frames, when there are any.
    pub frequency_hz: Option<f64>,
    /// RMS level of the active frames (-120 when none).
    pub rms_dbfs: f64,
    /// In-band DTMF digits detected over the whole recording.
    pub dtmf: String,
}

/// Frames quieter than this are left out of the level and frequency figures, so a tone that
/// arrived after some silence is measured as the tone.
pub const ACTIVE_FRAME_DBFS: f64 = -50.0;

pub fn summarize(samples: &[i16]) -> AudioSummary {
    let mut active: Vec<i16> = Vec::new();
    for frame in samples.chunks(SAMPLES_PER_FRAME) {
        if rms_dbfs(frame) > ACTIVE_FRAME_DBFS {
            active.extend_from_slice(frame);
        }
    }
    AudioSummary {
        seconds: samples.len() as f64 / f64::from(SAMPLE_RATE),
        active_seconds: active.len() as f64 / f64::from(SAMPLE_RATE),
        frequency_hz: dominant_frequency(&active),
        rms_dbfs: rms_dbfs(&active),
        dtmf: detect_dtmf(samples),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, dbfs: f64, ms: usize) -> Vec<i16> {
        let mut t = Tone::new(freq, dbfs);
        let mut v = vec![0i16; ms * 16];
        t.mix_into(&mut v);
        v
    }

    #[test]
    fn dominant_frequency_is_within_one_percent() {
        for freq in [300.0, 440.0, 1000.0, 1234.0, 3000.0, 6000.0] {
            let measured = dominant_frequency(&tone(freq, -6.0, 500)).unwrap();
            assert!(
                (measured - freq).abs() / freq < 0.01,
                "{freq} Hz measured as {measured}"
            );
        }
    }

    #[test]
    fn silence_has_no_frequency_and_a_floor_level() {
        let silence = vec![0i16; 8000];
        assert_eq!(dominant_frequency(&silence), None);
        assert_eq!(rms_dbfs(&silence), -120.0);
    }

    #[test]
    fn sine_level_is_three_db_below_peak() {
        let level = rms_dbfs(&tone(1000.0, -10.0, 200));
        assert!((level - (-13.01)).abs() < 0.1, "level {level}");
    }

    #[test]
    fn dtmf_digits_round_trip() {
        let digits = "0123456789*#ABCD";
        let mut seq = DtmfSequence::new(digits, 80, 60);
        let mut buf = vec![0i16; 16 * 140 * digits.len() + 1600];
        seq.fill(&mut buf);
        assert!(seq.finished());
        assert_eq!(detect_dtmf(&buf), digits);
    }

    #[test]
    fn repeated_digits_need_a_gap() {
        let mut seq = DtmfSequence::new("55", 60, 40);
        let mut buf = vec![0i16; 16 * 300];
        seq.fill(&mut buf);
        assert_eq!(detect_dtmf(&buf), "55");
    }

    #[test]
    fn a_frame_lost_inside_a_tone_is_not_a_second_press() {
        let mut seq = DtmfSequence::new("1", 160, 100);
        let mut buf = vec![0i16; 16 * 300];
        seq.fill(&mut buf);
        // One 20 ms frame of the tone written as silence, as a late frame is played out.
        buf[16 * 60..16 * 80].fill(0);
        assert_eq!(detect_dtmf(&buf), "1");
        // Not block-aligned either.
        let mut seq = DtmfSequence::new("1", 160, 100);
        seq.fill(&mut buf);
        buf[16 * 70..16 * 90].fill(0);
        assert_eq!(detect_dtmf(&buf), "1");
    }

    #[test]
    fn plain_tone_is_not_dtmf() {
        assert_eq!(detect_dtmf(&tone(1000.0, -6.0, 500)), "");
        assert_eq!(detect_dtmf(&tone(697.0, -6.0, 500)), "");
    }

    #[test]
    fn summary_ignores_leading_silence() {
        let mut v = vec![0i16; 16000];
        v.extend(tone(800.0, -12.0, 1000));
        let s = summarize(&v);
        assert!((s.seconds - 2.0).abs() < 1e-9);
        assert!((s.active_seconds - 1.0).abs() < 0.03);
        let f = s.frequency_hz.unwrap();
        assert!((f - 800.0).abs() < 8.0, "{f}");
        assert!((s.rms_dbfs - (-15.0)).abs() < 0.2, "{}", s.rms_dbfs);
    }

    #[test]
    fn byte_conversion_round_trips() {
        let samples = [0i16, 1, -1, 32767, -32768];
        let mut bytes = [0u8; 10];
        samples_to_le_bytes(&samples, &mut bytes);
        let mut back = Vec::new();
        samples_from_le_bytes(&bytes, &mut back);
        assert_eq!(back, samples);
    }
}
