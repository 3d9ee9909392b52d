//! Call audio: 20 ms frames, pacing, jitter buffering, silence fill, DTMF detection, WAV taps.

pub mod dsp;
