//! The real sidecar and emulator, one interface per call, each client tracing its audio.

use crate::cpu::{idle_cpu, mem_available_kib, rss_kib};
use crate::figures::{analyse, run_window, wait_first_echoes, Figures, Measured, Memory};
use crate::hook::{HookRef, ProbeHook};
use crate::support::fs_double::DialedCall;
use crate::support::stack::{Stack, StackSpec, WAIT};
use crate::Transport;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct SidecarStack {
    stack: Stack,
    hook: Arc<ProbeHook>,
    traces: Vec<PathBuf>,
    idle_cpu_pct: f64,
    _trace_dir: tempfile::TempDir,
}

impl SidecarStack {
    pub async fn start(interfaces: usize, unicast: bool) -> SidecarStack {
        let trace_dir = tempfile::tempdir().expect("trace dir");
        let mut spec = StackSpec::interfaces(interfaces);
        if unicast {
            spec.switch = "media = \"unicast\"\n".to_string();
        }
        let mut traces = Vec::new();
        for (i, iface) in spec.interfaces.iter_mut().enumerate() {
            let path = trace_dir.path().join(format!("client{}.trace", i + 1));
            iface.client_args = vec!["--audio-trace".into(), path.display().to_string()];
            traces.push(path);
        }
        let stack = Stack::start(spec).await;
        let hook = Arc::new(ProbeHook::default());
        stack
            .fs
            .set_media_hook(Arc::new(HookRef(Arc::clone(&hook))));
        let stat = format!("/proc/{}/stat", stack.sidecar_pid());
        let idle_cpu_pct = idle_cpu(&stat).await;
        SidecarStack {
            stack,
            hook,
            traces,
            idle_cpu_pct,
            _trace_dir: trace_dir,
        }
    }

    fn emulator_pids(&self) -> Vec<u32> {
        let mut pids = vec![self.stack.net.pid()];
        pids.extend(self.stack.clients.iter().flatten().map(|c| c.pid()));
        pids.extend(self.stack.displays.iter().map(|d| d.pid()));
        pids
    }

    fn dial(&self, transport: Transport) -> DialedCall {
        if transport.is_unicast() {
            // The unicast dialplan: no send_silence_when_idle.
            let vars = [("read_rate".to_string(), transport.rate().to_string())];
            self.stack.fs.dial_route(
                self.stack.outbound,
                "instantecho",
                "1000",
                None,
                &vars,
                true,
            )
        } else {
            self.stack.dial("instantecho")
        }
    }

    /// `calls` concurrent FreeSWITCH → `skype/instantecho` calls through the sidecar.
    pub async fn scenario(&self, transport: Transport, calls: usize) -> Figures {
        let stack = &self.stack;
        self.hook.probes.lock().unwrap().clear();
        let mut dialed = Vec::new();
        for _ in 0..calls {
            let call = self.dial(transport);
            stack.fs.wait_answered(&call.socket_leg, WAIT).await;
            dialed.push(call);
        }
        let deadline = Instant::now() + WAIT;
        let rows = stack.interfaces().await;
        let mut measured = Vec::new();
        for call in &dialed {
            let probe = loop {
                if let Some(p) = self.hook.probe(&call.socket_leg) {
                    break p;
                }
                assert!(
                    Instant::now() < deadline,
                    "no media for {}: {:?}",
                    call.socket_leg,
                    self.hook.errors.lock().unwrap()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            let answered_wall_us = stack
                .fs
                .channel(&call.socket_leg)
                .map(|c| c.answered_us)
                .unwrap_or(0);
            let interface = rows
                .iter()
                .find(|r| r.uuid == call.socket_leg || r.uuid == call.caller_leg)
                .map(|r| r.id as usize);
            measured.push(Measured {
                probe,
                answered_wall_us,
                trace: interface.and_then(|id| self.traces.get(id.wrapping_sub(1)).cloned()),
            });
        }
        let name = format!("sidecar {} × {calls}", transport.label());
        wait_first_echoes(&name, &measured).await;
        let stat = format!("/proc/{}/stat", stack.sidecar_pid());
        let window = run_window(&stat, &self.emulator_pids()).await;
        let mut figures = analyse(
            "sidecar + skype-sim",
            transport,
            &measured,
            &window,
            self.idle_cpu_pct,
            true,
        );
        let mib = |kib: u64| kib as f64 / 1024.0;
        figures.memory = Some(Memory {
            sidecar_mib: mib(rss_kib(stack.sidecar_pid())),
            emulator_mib: mib(self.emulator_pids().into_iter().map(rss_kib).sum()),
            machine_available_mib: mib(mem_available_kib()),
        });
        for call in &dialed {
            stack.fs.hangup(&call.caller_leg, "NORMAL_CLEARING");
        }
        stack.wait_no_calls().await;
        stack.wait_all_idle().await;
        figures
    }
}
