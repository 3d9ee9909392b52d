//! A whole call's media path over real sockets: the double's mod_audio_fork client <-> the
//! audio fork server <-> the media pump <-> the Skype audio ports <-> a fake Skype client.
mod support;

use skypopen::media::pump::{self, PumpConfig, PumpCounters, PumpStop};
use skypopen::media::tap::WavTap;
use skypopen::skype::audio::{AudioOptions, PortAllocator, SkypeAudio};
use skypopen::switch::media::{ForkToken, MediaServer};
use std::sync::Arc;
use std::time::Duration;
use support::fs_double::fork_client::{ForkClient, Source};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(10);

/// Frequency from zero crossings, and RMS: enough to tell a 440 Hz tone from 1 kHz.
fn analyse(samples: &[i16]) -> (f64, f64) {
    let crossings = samples
        .windows(2)
        .filter(|w| (w[0] < 0) != (w[1] < 0))
        .count();
    let seconds = samples.len() as f64 / 16_000.0;
    let rms =
        (samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len() as f64).sqrt();
    (crossings as f64 / 2.0 / seconds, rms)
}

fn tone(hz: f64, amplitude: f64, frame: usize) -> Vec<u8> {
    (0..320)
        .map(|i| {
            let t = (frame * 320 + i) as f64 / 16_000.0;
            (amplitude * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16
        })
        .flat_map(|s| s.to_le_bytes())
        .collect()
}

#[tokio::test]
async fn a_call_carries_each_voice_to_the_other_side() {
    let cancel = CancellationToken::new();
    let server = MediaServer::start(
        "127.0.0.1:0".parse().unwrap(),
        None,
        Duration::from_secs(10),
        cancel.clone(),
    )
    .await
    .unwrap();
    let allocator = PortAllocator::new(34_000..=38_000);
    let audio = SkypeAudio::bind(&allocator, AudioOptions { setsockopt: true }).unwrap();

    // The fake Skype client connects to both ports and talks a 1 kHz tone every 20 ms.
    let mut input = TcpStream::connect(("127.0.0.1", audio.ports.input))
        .await
        .unwrap();
    let mut output = TcpStream::connect(("127.0.0.1", audio.ports.output))
        .await
        .unwrap();
    let talker = tokio::spawn(async move {
        let mut clock = tokio::time::interval(Duration::from_millis(20));
        for frame in 0.. {
            clock.tick().await;
            if output
                .write_all(&tone(1000.0, 8000.0, frame))
                .await
                .is_err()
            {
                break;
            }
        }
    });

    let token = ForkToken::generate();
    let (url, pending) = server.expect(&token);
    let caller = ForkClient::connect(
        &url,
        &format!("{{\"call\":\"{}\"}}", token.as_str()),
        Source::Tone {
            hz: 440.0,
            amplitude: 8000.0,
        },
    )
    .await;
    let fork = pending.wait(DEADLINE).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let tap_path = dir.path().join("call.wav");
    let tap = WavTap::create(&tap_path).unwrap();
    let counters = Arc::new(PumpCounters::default());
    let pump = tokio::spawn(pump::run(
        audio.side,
        fork.frames,
        PumpConfig::default(),
        Arc::clone(&counters),
        Some(tap),
        cancel.child_token(),
    ));

    // What the remote Skype party hears: the caller's 440 Hz (after any priming silence).
    let mut heard = vec![0u8; 50 * 640];
    tokio::time::timeout(DEADLINE, input.read_exact(&mut heard))
        .await
        .unwrap()
        .unwrap();
    let heard: Vec<i16> = heard
        .chunks_exact(2)
        .map(|p| i16::from_le_bytes([p[0], p[1]]))
        .skip_while(|&s| s == 0)
        .collect();
    let (hz, rms) = analyse(&heard[..heard.len().min(16_000 / 2)]);
    assert!((hz - 440.0).abs() < 20.0, "Skype heard {hz} Hz");
    assert!((rms - 5657.0).abs() < 300.0, "Skype heard RMS {rms}");

    // What the FreeSWITCH caller hears: Skype's 1 kHz.
    let got = caller.wait_samples(50 * 320, DEADLINE).await;
    let voiced: Vec<i16> = got.into_iter().skip_while(|&s| s == 0).collect();
    assert!(voiced.len() >= 8000, "only {} samples voiced", voiced.len());
    let (hz, rms) = analyse(&voiced[..8000]);
    assert!((hz - 1000.0).abs() < 30.0, "caller heard {hz} Hz");
    assert!((rms - 5657.0).abs() < 300.0, "caller heard RMS {rms}");

    // Hangup on the FreeSWITCH side ends the pump; the Skype ports are closed after it.
    caller.close().await;
    let report = tokio::time::timeout(DEADLINE, pump).await.unwrap().unwrap();
    assert_eq!(report.stop, PumpStop::SwitchClosed);
    assert!(report.to_switch.frames_out >= 40, "{report:?}");
    assert!(report.to_skype.frames_out >= 40, "{report:?}");
    // The pump owned the ports: they are closed now.
    assert!(TcpStream::connect(("127.0.0.1", audio.ports.input))
        .await
        .is_err());
    talker.abort();

    // The tap has both directions, left = Skype's voice, right = the caller's.
    let mut wav = hound::WavReader::open(&tap_path).unwrap();
    assert_eq!(wav.spec().channels, 2);
    let samples: Vec<i16> = wav.samples::<i16>().map(|s| s.unwrap()).collect();
    let left: Vec<i16> = samples
        .iter()
        .step_by(2)
        .copied()
        .skip_while(|&s| s == 0)
        .collect();
    let right: Vec<i16> = samples
        .iter()
        .skip(1)
        .step_by(2)
        .copied()
        .skip_while(|&s| s == 0)
        .collect();
    assert!((analyse(&left[..8000]).0 - 1000.0).abs() < 30.0);
    assert!((analyse(&right[..8000]).0 - 440.0).abs() < 20.0);
    cancel.cancel();
}
