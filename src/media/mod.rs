//! Call audio: 20 ms frames, pacing, jitter buffering, silence fill, resampling, DTMF
//! detection, WAV taps.
//!
//! Every transport (Skype's TCP audio ports, the audio fork websocket, `unicast` UDP) is reduced
//! to a [`side::MediaSide`]; the pump moves frames between the Skype side and the switch
//! side on one 20 ms clock per call.

pub mod dsp;
pub mod frame;
pub mod jitter;
pub mod pump;
pub mod resample;
pub mod side;
pub mod tap;

pub use frame::{
    Frame, FrameAssembler, FRAME_BYTES, FRAME_DURATION, SAMPLES_PER_FRAME, SAMPLE_RATE,
};
