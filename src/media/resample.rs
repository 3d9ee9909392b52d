//! Band-limited sample-rate conversion between a FreeSWITCH channel's codec rate (8, 16, 32 or
//! 48 kHz) and Skype's 16 kHz.
//!
//! A rational polyphase resampler with a Kaiser-windowed sinc low-pass: it keeps its history
//! across calls to [`Resampler::process`], so 20 ms frames join without clicks, and it costs a
//! fixed group delay of half the filter (2.5 ms for 8 kHz <-> 16 kHz). The cut-off sits at 85 %
//! of the lower rate's Nyquist frequency, i.e. 3.4 kHz towards an 8 kHz leg: the telephone band.

/// Converts a stream of samples from one rate to another. One per call and direction.
#[derive(Debug, Clone)]
pub struct Resampler {
    up: usize,
    down: usize,
    /// Prototype filter at the intermediate rate `in_rate * up`, scaled by `up`.
    taps: Vec<f32>,
    /// The last input samples, newest at `(written - 1) & mask`.
    history: Vec<f32>,
    mask: usize,
    /// Input samples received so far.
    written: u64,
    /// Index of the next output sample.
    next_out: u64,
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Zeroth-order modified Bessel function of the first kind, for the Kaiser window.
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let half = x / 2.0;
    for k in 1..50 {
        term *= (half / k as f64) * (half / k as f64);
        sum += term;
        if term < sum * 1e-12 {
            break;
        }
    }
    sum
}

impl Resampler {
    /// `None` when either rate is zero.
    pub fn new(in_rate: u32, out_rate: u32) -> Option<Resampler> {
        if in_rate == 0 || out_rate == 0 {
            return None;
        }
        let (in_rate, out_rate) = (in_rate as usize, out_rate as usize);
        let g = gcd(in_rate, out_rate);
        let (up, down) = (out_rate / g, in_rate / g);
        let fs = (in_rate * up) as f64;
        let cutoff = 0.85 * (in_rate.min(out_rate) as f64 / 2.0);
        // ~700 Hz transition for 60 dB stop-band attenuation, whatever the rates.
        let len = ((fs / 200.0).ceil() as usize).div_ceil(up) * up;
        let beta = 5.65;
        let centre = (len - 1) as f64 / 2.0;
        let norm = bessel_i0(beta);
        let taps = (0..len)
            .map(|n| {
                let t = n as f64 - centre;
                let x = 2.0 * cutoff / fs;
                let sinc = if t == 0.0 {
                    x
                } else {
                    (std::f64::consts::PI * x * t).sin() / (std::f64::consts::PI * t)
                };
                let r = t / centre;
                let window = bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / norm;
                (sinc * window * up as f64) as f32
            })
            .collect::<Vec<_>>();
        let span = (len / up + 2).next_power_of_two();
        Some(Resampler {
            up,
            down,
            taps,
            history: vec![0.0; span],
            mask: span - 1,
            written: 0,
            next_out: 0,
        })
    }

    /// Identity conversions are worth skipping altogether.
    pub fn is_identity(&self) -> bool {
        self.up == 1 && self.down == 1
    }

    /// Delay the filter adds, in output samples.
    pub fn delay_samples(&self) -> usize {
        (self.taps.len() / 2) / self.down
    }

    /// Converts `input`, appending the output samples to `output` (reuse the vector: no
    /// allocation once it has grown to a frame).
    pub fn process(&mut self, input: &[i16], output: &mut Vec<i16>) {
        for &sample in input {
            let slot = (self.written as usize) & self.mask;
            self.history[slot] = f32::from(sample);
            self.written += 1;
            self.drain(output);
        }
    }

    fn drain(&mut self, output: &mut Vec<i16>) {
        let (up, down) = (self.up as u64, self.down as u64);
        loop {
            let j = self.next_out * down;
            let newest = j / up;
            if newest >= self.written {
                return;
            }
            let phase = (j - newest * up) as usize;
            let mut acc = 0.0f32;
            let mut k = phase;
            let mut i = newest;
            while k < self.taps.len() {
                acc += self.history[(i as usize) & self.mask] * self.taps[k];
                if i == 0 {
                    break;
                }
                i -= 1;
                k += self.up;
            }
            output.push(acc.round().clamp(i16::MIN as f32, i16::MAX as f32) as i16);
            self.next_out += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, rate: u32, seconds: f64, amplitude: f64) -> Vec<i16> {
        let n = (rate as f64 * seconds) as usize;
        (0..n)
            .map(|i| {
                (amplitude * (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin())
                    as i16
            })
            .collect()
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / x.len() as f64).sqrt()
    }

    /// Power of one frequency (Goertzel), normalised to an RMS amplitude.
    fn goertzel_rms(x: &[i16], freq: f64, rate: u32) -> f64 {
        let w = 2.0 * std::f64::consts::PI * freq / rate as f64;
        let coeff = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0, 0.0);
        for &v in x {
            let s = f64::from(v) + coeff * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
        (2.0 * power).sqrt() / x.len() as f64
    }

    /// Runs `input` through `r` in 20 ms frames, as calls do.
    fn in_frames(r: &mut Resampler, input: &[i16], rate: u32) -> Vec<i16> {
        let mut out = Vec::new();
        for frame in input.chunks(rate as usize / 50) {
            r.process(frame, &mut out);
        }
        out
    }

    fn db(a: f64, b: f64) -> f64 {
        20.0 * (a / b).log10()
    }

    #[test]
    fn one_khz_survives_16k_to_8k_to_16k_in_frequency_and_level() {
        let input = tone(1000.0, 16000, 1.0, 8000.0);
        let mut down = Resampler::new(16000, 8000).unwrap();
        let mut up = Resampler::new(8000, 16000).unwrap();
        let narrow = in_frames(&mut down, &input, 16000);
        assert_eq!(narrow.len(), 8000);
        let back = in_frames(&mut up, &narrow, 8000);
        assert_eq!(back.len(), 16000);
        // Skip the filters' start-up, measure the steady state.
        let steady = &back[1600..];
        let level = db(rms(steady), rms(&input[1600..]));
        eprintln!("1 kHz through 16k->8k->16k: level {level:+.3} dB");
        assert!(level.abs() < 0.5, "level changed by {level:.2} dB");
        let at_1k = goertzel_rms(steady, 1000.0, 16000);
        for off in [960.0, 1040.0] {
            assert!(
                goertzel_rms(steady, off, 16000) < at_1k / 10.0,
                "energy at {off} Hz"
            );
        }
        assert!(db(at_1k, rms(steady)).abs() < 0.5);
    }

    #[test]
    fn above_telephone_band_is_attenuated_not_aliased() {
        let mut down = Resampler::new(16000, 8000).unwrap();
        let in_band = in_frames(&mut down, &tone(1000.0, 16000, 0.5, 8000.0), 16000);
        let mut down = Resampler::new(16000, 8000).unwrap();
        let edge = in_frames(&mut down, &tone(3500.0, 16000, 0.5, 8000.0), 16000);
        let attenuation = db(rms(&edge[800..]), rms(&in_band[800..]));
        eprintln!("3.5 kHz on the 8 kHz leg: {attenuation:+.1} dB");
        assert!(attenuation < -10.0, "3.5 kHz only {attenuation:.1} dB down");
        // A naive decimator would fold 4.5 kHz onto 3.5 kHz at full level.
        let mut down = Resampler::new(16000, 8000).unwrap();
        let beyond = in_frames(&mut down, &tone(4500.0, 16000, 0.5, 8000.0), 16000);
        let folded = goertzel_rms(&beyond[800..], 3500.0, 8000);
        let folded_db = db(folded, 8000.0 / std::f64::consts::SQRT_2);
        eprintln!("4.5 kHz folded onto 3.5 kHz: {folded_db:+.1} dB");
        assert!(folded_db < -50.0);
    }

    #[test]
    fn frame_edges_do_not_click() {
        // A tone cut into frames must equal the tone converted in one go.
        let input = tone(440.0, 8000, 0.2, 12000.0);
        let mut whole = Resampler::new(8000, 16000).unwrap();
        let mut expected = Vec::new();
        whole.process(&input, &mut expected);
        let mut framed = Resampler::new(8000, 16000).unwrap();
        assert_eq!(in_frames(&mut framed, &input, 8000), expected);
    }

    #[test]
    fn other_rates_and_identity() {
        let mut r = Resampler::new(48000, 16000).unwrap();
        let out = in_frames(&mut r, &tone(1000.0, 48000, 0.2, 8000.0), 48000);
        assert_eq!(out.len(), 3200);
        assert!(Resampler::new(16000, 16000).unwrap().is_identity());
        assert!(Resampler::new(0, 16000).is_none());
        assert_eq!(Resampler::new(8000, 16000).unwrap().delay_samples(), 40);
    }
}
