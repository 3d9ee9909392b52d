//! The client's calls: placing one, the `GET CALL` / `ALTER CALL` / `SET CALL` surface, and
//! the status the network reports for each (spec 5-7).

use super::command::CallAction;
use super::{unexpected, Client, ClientCall, REMEMBERED_CALLS, TERMINAL};
use crate::sim::proto::{Reply, Request};
use std::time::Instant;
use tracing::info;

impl Client {
    pub(super) async fn dial(&mut self, target: &str) -> Vec<String> {
        let target = target.trim();
        match self
            .net(Request::Dial {
                target: target.to_string(),
            })
            .await
        {
            Ok(Reply::Dialled { call }) => {
                let pstn = crate::sim::accounts::is_pstn(target);
                let call_type = if pstn {
                    "OUTGOING_PSTN"
                } else {
                    "OUTGOING_P2P"
                };
                self.remember(
                    call,
                    ClientCall::new(
                        target.to_string(),
                        crate::sim::accounts::display_name(target),
                        call_type.into(),
                        "UNPLACED",
                    ),
                );
                info!(call, target, "outgoing call");
                vec![format!("CALL {call} STATUS UNPLACED")]
            }
            Ok(other) => vec![unexpected(other)],
            Err(line) => vec![line],
        }
    }

    pub(super) fn remember(&mut self, id: u64, call: ClientCall) {
        self.calls.insert(id, call);
        while self.calls.len() > REMEMBERED_CALLS {
            let oldest_finished = self
                .calls
                .iter()
                .find(|(_, c)| c.finished)
                .map(|(id, _)| *id);
            match oldest_finished {
                Some(old) => {
                    self.calls.remove(&old);
                }
                None => break,
            }
        }
    }

    pub(super) fn get_call(&self, id: u64, property: &str) -> String {
        let Some(c) = self.calls.get(&id) else {
            return "ERROR 11 Invalid call id".into();
        };
        let value = match property {
            "STATUS" => c.status.clone(),
            "PARTNER_HANDLE" => c.partner_handle.clone(),
            "PARTNER_DISPNAME" => c.partner_dispname.clone(),
            "TYPE" => c.call_type.clone(),
            "DURATION" => c.duration().to_string(),
            "FAILUREREASON" => c.failure_reason.to_string(),
            "VAA_INPUT_STATUS" => if c.vaa_input { "TRUE" } else { "FALSE" }.into(),
            "CONF_ID" => "0".into(),
            _ => return "ERROR 2 Unknown command".into(),
        };
        format!("CALL {id} {property} {value}")
    }

    pub(super) fn live(&self, id: u64) -> bool {
        self.calls.get(&id).is_some_and(|c| !c.finished)
    }

    pub(super) async fn alter_call(
        &mut self,
        id: u64,
        action: CallAction,
        text: &str,
    ) -> Vec<String> {
        if !self.calls.contains_key(&id) {
            return vec!["ERROR 559 CALL: Action failed".into()];
        }
        match action {
            CallAction::Answer => self.answer(id, Some(text)).await,
            CallAction::Hangup | CallAction::End(_) => self.hangup(id, Some(text)).await,
            CallAction::Hold => self.hold(id, true, Some(text)).await,
            CallAction::Resume => self.hold(id, false, Some(text)).await,
            CallAction::Transfer(target) => {
                if !self.live(id) {
                    return vec!["ERROR 592 ALTER CALL: Transferring failed".into()];
                }
                match self.net(Request::Transfer { call: id, target }).await {
                    Ok(_) => vec![text.to_string()],
                    Err(line) => vec![line],
                }
            }
            CallAction::SetInput(port) | CallAction::SetOutput(port) => {
                let input = matches!(action, CallAction::SetInput(_));
                if !self.live(id) {
                    return vec!["ERROR 559 CALL: Action failed".into()];
                }
                if let Some(call) = self.calls.get_mut(&id) {
                    match port {
                        Some(p) if input => call.audio.start_input(id, p, &self.audio),
                        Some(p) => call.audio.start_output(id, p, &self.audio),
                        None => {}
                    }
                }
                vec![text.to_string()]
            }
            CallAction::Other(_) => vec!["ERROR 2 Unknown command".into()],
        }
    }

    pub(super) async fn answer(&mut self, id: u64, echo: Option<&str>) -> Vec<String> {
        let ringing = self.calls.get(&id).is_some_and(|c| {
            !c.finished && c.status == "RINGING" && c.call_type.starts_with("INCOMING")
        });
        if !ringing || self.config.answer_error {
            return vec!["ERROR 559 CALL: Action failed".into()];
        }
        match self.net(Request::Answer { call: id }).await {
            // INPROGRESS follows as a network status notification.
            Ok(_) => echo.map(|e| vec![e.to_string()]).unwrap_or_default(),
            Err(line) => vec![line],
        }
    }

    pub(super) async fn hangup(&mut self, id: u64, echo: Option<&str>) -> Vec<String> {
        if !self.live(id) {
            return vec!["ERROR 559 CALL: Action failed".into()];
        }
        let status = match self.net(Request::Hangup { call: id }).await {
            Ok(Reply::Ended { status }) => status,
            // Offline or already gone on the network: the call ends locally all the same.
            _ => "FINISHED".into(),
        };
        let mut lines: Vec<String> = echo.map(|e| vec![e.to_string()]).unwrap_or_default();
        self.finish(id, &status);
        lines.push(format!("CALL {id} STATUS {status}"));
        lines
    }

    pub(super) async fn hold(&mut self, id: u64, on: bool, echo: Option<&str>) -> Vec<String> {
        if !self.live(id) || self.calls.get(&id).is_some_and(|c| c.answered_at.is_none()) {
            return vec!["ERROR 559 CALL: Action failed".into()];
        }
        if let Err(line) = self.net(Request::Hold { call: id, on }).await {
            return vec![line];
        }
        let status = if on { "LOCALHOLD" } else { "INPROGRESS" };
        if let Some(c) = self.calls.get_mut(&id) {
            c.status = status.into();
            c.audio.set_held(on);
        }
        let mut lines: Vec<String> = echo.map(|e| vec![e.to_string()]).unwrap_or_default();
        lines.push(format!("CALL {id} STATUS {status}"));
        lines
    }

    pub(super) async fn set_dtmf(&mut self, id: u64, digit: &str) -> Vec<String> {
        if !self.live(id) {
            return vec!["ERROR 559 CALL: Action failed".into()];
        }
        for d in digit.chars() {
            let _ = self.net(Request::Dtmf { call: id, digit: d }).await;
        }
        if self.config.dtmf_echo {
            vec![format!("CALL {id} DTMF {digit}")]
        } else {
            vec![]
        }
    }

    /// Ends a call locally: stops its audio, remembers it as finished.
    pub(super) fn finish(&mut self, id: u64, status: &str) {
        if let Some(c) = self.calls.get_mut(&id) {
            c.finished = true;
            c.status = status.to_string();
            c.audio.stop();
        }
        self.audio.routes.remove(&id);
    }

    pub(super) async fn on_status(&mut self, id: u64, status: &str) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.finished {
            return;
        }
        call.status = status.to_string();
        match status {
            "INPROGRESS" => {
                if call.answered_at.is_none() {
                    call.answered_at = Some(Instant::now());
                }
                call.audio.set_held(false);
            }
            "REMOTEHOLD" => call.audio.set_held(true),
            _ => {}
        }
        info!(call = id, status, "call status");
        if TERMINAL.contains(&status) {
            self.finish(id, status);
        }
        self.notify(format!("CALL {id} STATUS {status}")).await;
    }
}
