//! FreeSWITCH's stock `unicast` media path: UDP, L16 at the channel's codec rate, one datagram
//! per 20 ms each way, while the channel is parked (an async `socket` channel is).
//!
//! FreeSWITCH binds `local-ip:local-port` and sends from it to `remote-ip:remote-port`, where the
//! sidecar listens; the sidecar sends its frames back to FreeSWITCH's local port. There are no
//! sequence numbers: the leg accepts datagrams only from FreeSWITCH's address and leaves timing
//! to the media pump.

pub mod relay;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use tokio::net::UdpSocket;

#[derive(Debug, thiserror::Error)]
pub enum UnicastError {
    #[error("no free UDP port pair left in {0:?}")]
    NoPorts(RangeInclusive<u16>),
    #[error("unicast socket: {0}")]
    Io(#[from] io::Error),
}

/// Bytes of one 20 ms L16 mono frame at `rate`.
pub fn frame_bytes(rate: u32) -> usize {
    (rate / 50) as usize * 2
}

/// Hands out (sidecar port, FreeSWITCH port) pairs from the configured range, round robin, so a
/// port freed by one call is not reused by the next at once (late datagrams of the old call).
#[derive(Debug, Clone)]
pub struct UnicastPorts {
    range: RangeInclusive<u16>,
    next: Arc<AtomicU32>,
}

impl UnicastPorts {
    pub fn new(range: RangeInclusive<u16>) -> Self {
        UnicastPorts {
            range,
            next: Arc::new(AtomicU32::new(0)),
        }
    }

    fn pairs(&self) -> u32 {
        let len = u32::from(*self.range.end()) - u32::from(*self.range.start()) + 1;
        len / 2
    }

    /// Binds the sidecar's socket on `ip` and picks FreeSWITCH's port beside it. When
    /// FreeSWITCH runs on this host (`fs_ip` is local) its port is checked to be free too.
    pub async fn open(&self, ip: IpAddr, fs_ip: IpAddr) -> Result<UnicastLeg, UnicastError> {
        let pairs = self.pairs();
        for _ in 0..pairs {
            let n = self.next.fetch_add(1, Ordering::Relaxed) % pairs.max(1);
            let ours = *self.range.start() as u32 + 2 * n;
            let theirs = ours + 1;
            let (Ok(ours), Ok(theirs)) = (u16::try_from(ours), u16::try_from(theirs)) else {
                continue;
            };
            let Ok(socket) = UdpSocket::bind((ip, ours)).await else {
                continue;
            };
            if fs_ip.is_loopback() && std::net::UdpSocket::bind((fs_ip, theirs)).is_err() {
                continue;
            }
            return Ok(UnicastLeg {
                socket,
                local: SocketAddr::new(ip, ours),
                freeswitch: SocketAddr::new(fs_ip, theirs),
            });
        }
        Err(UnicastError::NoPorts(self.range.clone()))
    }
}

/// One call's UDP leg.
#[derive(Debug)]
pub struct UnicastLeg {
    socket: UdpSocket,
    local: SocketAddr,
    freeswitch: SocketAddr,
}

impl UnicastLeg {
    /// Where the sidecar listens (`remote-ip` / `remote-port` for FreeSWITCH).
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// Where FreeSWITCH binds and sends from (`local-ip` / `local-port`).
    pub fn freeswitch(&self) -> SocketAddr {
        self.freeswitch
    }

    /// The `sendmsg` headers that start it. No `flags: native`: FreeSWITCH then sends L16 at the
    /// channel's codec rate whatever the codec.
    pub fn sendmsg_headers(&self) -> Vec<(&'static str, String)> {
        vec![
            ("call-command", "unicast".into()),
            ("local-ip", self.freeswitch.ip().to_string()),
            ("local-port", self.freeswitch.port().to_string()),
            ("remote-ip", self.local.ip().to_string()),
            ("remote-port", self.local.port().to_string()),
            ("transport", "udp".into()),
        ]
    }

    /// From now on only datagrams from FreeSWITCH's address are accepted (the kernel drops
    /// others on a connected UDP socket).
    pub async fn lock_to_freeswitch(&self) -> io::Result<()> {
        self.socket.connect(self.freeswitch).await
    }

    /// Receives one datagram into `buf`; returns its length.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.recv(buf).await
    }

    /// Sends one frame to FreeSWITCH now, or `WouldBlock` when the send buffer is full.
    pub fn try_send(&self, frame: &[u8]) -> io::Result<()> {
        self.socket.try_send_to(frame, self.freeswitch).map(|_| ())
    }
}

/// `send_silence_when_idle` makes the park loop write its own silence between the unicast
/// frames, so the call hears chopped audio (fixture s3a: 49 of 75 frames). Any non-zero value
/// counts, as FreeSWITCH reads it with `atoi`.
pub fn silence_when_idle_is_set(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        let v = v.trim();
        let digits = v.strip_prefix('-').unwrap_or(v);
        let leading: String = digits.chars().take_while(char::is_ascii_digit).collect();
        leading.parse::<i64>().is_ok_and(|n| n != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCALHOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn frame_sizes_follow_the_codec_rate() {
        assert_eq!(frame_bytes(8000), 320);
        assert_eq!(frame_bytes(16000), 640);
        assert_eq!(frame_bytes(48000), 1920);
    }

    #[test]
    fn atoi_semantics_for_send_silence_when_idle() {
        assert!(silence_when_idle_is_set(Some("-1")));
        assert!(silence_when_idle_is_set(Some("400")));
        assert!(!silence_when_idle_is_set(Some("0")));
        assert!(!silence_when_idle_is_set(Some("")));
        assert!(!silence_when_idle_is_set(Some("false")));
        assert!(!silence_when_idle_is_set(None));
    }

    #[tokio::test]
    async fn headers_name_both_ends_and_only_freeswitch_is_heard() {
        let ports = UnicastPorts::new(47100..=47199);
        let leg = ports.open(LOCALHOST, LOCALHOST).await.unwrap();
        let headers = leg.sendmsg_headers();
        let get = |k: &str| headers.iter().find(|(n, _)| *n == k).unwrap().1.clone();
        assert_eq!(get("call-command"), "unicast");
        assert_eq!(get("transport"), "udp");
        assert_eq!(get("remote-port"), leg.local().port().to_string());
        assert_eq!(get("local-port"), leg.freeswitch().port().to_string());
        assert!(!headers.iter().any(|(n, _)| *n == "flags"));

        let freeswitch = UdpSocket::bind(leg.freeswitch()).await.unwrap();
        let stranger = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
        leg.lock_to_freeswitch().await.unwrap();
        stranger.send_to(&[9u8; 320], leg.local()).await.unwrap();
        freeswitch.send_to(&[1u8; 320], leg.local()).await.unwrap();
        let mut buf = [0u8; 2048];
        let n = leg.recv(&mut buf).await.unwrap();
        assert_eq!(
            (n, buf[0]),
            (320, 1),
            "the stranger's datagram must be dropped"
        );

        leg.try_send(&[2u8; 320]).unwrap();
        let (n, from) = freeswitch.recv_from(&mut buf).await.unwrap();
        assert_eq!((n, from), (320, leg.local()));
    }

    #[tokio::test]
    async fn pairs_rotate_and_run_out() {
        let ports = UnicastPorts::new(47200..=47203);
        let a = ports.open(LOCALHOST, LOCALHOST).await.unwrap();
        let b = ports.open(LOCALHOST, LOCALHOST).await.unwrap();
        assert_ne!(a.local(), b.local());
        assert!(matches!(
            ports.open(LOCALHOST, LOCALHOST).await,
            Err(UnicastError::NoPorts(_))
        ));
        drop(a);
        assert!(ports.open(LOCALHOST, LOCALHOST).await.is_ok());
    }
}
