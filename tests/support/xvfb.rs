//! Tests start their own X servers on free display numbers and stop them when dropped, with
//! the arguments the sidecar gives an emulated client's server (64x64x8, no GLX: 3.6 MB).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Xvfb {
    pub display: String,
    pub number: u32,
    child: Child,
}

impl Xvfb {
    /// Starts `Xvfb` on a free display number that the server picks itself (`-displayfd`):
    /// it claims the number atomically, so tests starting servers at the same moment, in this
    /// process or another, never end up sharing one. Returns once the server accepts
    /// connections.
    pub fn start() -> Xvfb {
        let mut child = Command::new("Xvfb")
            .args(["-displayfd", "1"])
            // The sidecar's own arguments for emulated clients (-noreset among them: without
            // it the server resets, wiping root properties, whenever its last client leaves).
            .args(skypopen::config::sim_xvfb_args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run Xvfb: install the xvfb package (scripts/test.sh does)");
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            // The server writes the number once it is ready; EOF means it failed.
            let _ = BufReader::new(stdout).read_line(&mut line);
        }
        match line.trim().parse::<u32>() {
            Ok(number) => Xvfb {
                display: format!(":{number}"),
                number,
                child,
            },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("Xvfb did not report a display number");
            }
        }
    }

    /// Starts `Xvfb` on exactly this display number (e.g. to bring a killed server back).
    pub fn start_on(number: u32) -> Option<Xvfb> {
        Self::try_start(number)
    }

    fn try_start(number: u32) -> Option<Xvfb> {
        let child = Command::new("Xvfb")
            .arg(format!(":{number}"))
            .args(skypopen::config::sim_xvfb_args())
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
