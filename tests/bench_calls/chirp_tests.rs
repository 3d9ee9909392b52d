//! The chirp finder the figures rest on (fast, not ignored).

use crate::support::probe::{delay_to_next, Chirp, TimedStream, CHIRP_PERIOD_NS, FRAME_NS};

fn stream_with_chirp(rate: u32, frame_offset: usize, delay_frames: usize) -> TimedStream {
    let chirp = Chirp::new(rate);
    let spf = chirp.samples_per_frame();
    let mut all = vec![0i16; spf * 40];
    let at = delay_frames * spf + frame_offset;
    all[at..at + spf].copy_from_slice(&chirp.template);
    let mut s = TimedStream::default();
    for (k, f) in all.chunks(spf).enumerate() {
        let bytes: Vec<u8> = f.iter().flat_map(|x| x.to_le_bytes()).collect();
        s.push_le(1_000_000_000 + k as u64 * FRAME_NS, &bytes);
    }
    s
}

#[test]
fn a_chirp_is_found_at_sample_precision() {
    for rate in [8000, 16_000] {
        for offset in [0, 1, 37, (rate / 50) as usize - 1] {
            let s = stream_with_chirp(rate, offset, 10);
            let found = s.chirps(&Chirp::new(rate));
            let want =
                1_000_000_000 + 10 * FRAME_NS + offset as u64 * 1_000_000_000 / u64::from(rate);
            assert_eq!(found, vec![want], "{rate} Hz, offset {offset}");
        }
    }
}

#[test]
fn delays_match_within_one_chirp_period() {
    let to = [150, 2 * CHIRP_PERIOD_NS];
    assert_eq!(delay_to_next(100, &to), Some(50));
    assert_eq!(delay_to_next(200, &to), None);
}

#[test]
fn the_module_plays_after_an_80_ms_prebuffer_then_in_40_ms_steps() {
    use crate::support::probe::ModulePlayout;
    let frame = vec![1u8; 640];
    let mut module = ModulePlayout::default();
    // Three frames in: nothing to play yet.
    for _ in 0..3 {
        module.push(&frame);
        assert!(module.play().is_none());
    }
    // The fourth fills the prebuffer: four frames play, one per write.
    module.push(&frame);
    for _ in 0..4 {
        assert!(module.play().is_some());
    }
    assert!(module.play().is_none());
    // Afterwards a single frame waits for a second one.
    module.push(&frame);
    assert!(module.play().is_none());
    module.push(&frame);
    assert!(module.play().is_some() && module.play().is_some());
}
