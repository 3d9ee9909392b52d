//! Tests start their own X servers on free display numbers and stop them when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Xvfb {
    pub display: String,
    pub number: u32,
    child: Child,
}

impl Xvfb {
    /// Starts `Xvfb` on the first free display number from a per-process pseudo-random base,
    /// and waits until it accepts connections (its unix socket exists and `-displayfd`
    /// reported the number).
    pub fn start() -> Xvfb {
        let base = 200 + (std::process::id() % 500) * 10;
        for number in base..base + 400 {
            if Path::new(&format!("/tmp/.X11-unix/X{number}")).exists()
                || Path::new(&format!("/tmp/.X{number}-lock")).exists()
            {
                continue;
            }
            if let Some(x) = Self::try_start(number) {
                return x;
            }
        }
        panic!("no free X display number found (is Xvfb installed?)");
    }

    fn try_start(number: u32) -> Option<Xvfb> {
        let child = Command::new("Xvfb")
            .arg(format!(":{number}"))
            .args(["-nolisten", "tcp", "-screen", "0", "640x480x24"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run Xvfb: install the xvfb package (scripts/test.sh does)");
        let mut x = Xvfb {
            display: format!(":{number}"),
            number,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let socket = format!("/tmp/.X11-unix/X{number}");
        while Instant::now() < deadline {
            if let Ok(Some(_)) = x.child.try_wait() {
                return None; // lost a race for this number
            }
            if Path::new(&socket).exists() && x11rb::connect(Some(&x.display)).is_ok() {
                return Some(x);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = x.child.kill();
        None
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the X server (for tests of what happens when it dies).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        self.kill();
    }
}
