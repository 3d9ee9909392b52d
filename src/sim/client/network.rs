//! What the emulated network tells the client: going on and off line, calls, chats, contacts,
//! the balance, and injected faults, each turned into the API notifications a real client gave.

use super::uplink::UplinkEvent;
use super::{Client, ClientCall, ClientExit, Profile};
use crate::sim::proto::{Down, Fault};
use std::time::Duration;
use tracing::{debug, info, warn};

impl Client {
    pub(super) async fn on_network(&mut self, event: UplinkEvent) -> Option<ClientExit> {
        match event {
            UplinkEvent::Online {
                display_name,
                balance,
                currency,
            } => {
                self.profile = Profile {
                    display_name,
                    balance,
                    currency,
                };
                if !self.online {
                    self.online = true;
                    self.notify("CONNSTATUS ONLINE".into()).await;
                }
            }
            UplinkEvent::Offline { reason } => {
                warn!(%reason, "network lost");
                let was_online = self.online;
                self.online = false;
                if was_online {
                    self.notify("CONNSTATUS OFFLINE".into()).await;
                }
                let live: Vec<u64> = self
                    .calls
                    .iter()
                    .filter(|(_, c)| !c.finished)
                    .map(|(id, _)| *id)
                    .collect();
                if !live.is_empty() {
                    self.notify("ERROR 36 Not online".into()).await;
                }
                for id in live {
                    self.finish(id, "FINISHED");
                    self.notify(format!("CALL {id} STATUS FINISHED")).await;
                }
            }
            UplinkEvent::Message(msg) => return self.on_down(msg).await,
        }
        None
    }

    async fn on_down(&mut self, msg: Down) -> Option<ClientExit> {
        match msg {
            Down::Incoming {
                call,
                partner_handle,
                partner_dispname,
                call_type,
            } => {
                info!(call, from = %partner_handle, "incoming call");
                self.remember(
                    call,
                    ClientCall::new(partner_handle, partner_dispname, call_type, "RINGING"),
                );
                self.notify(format!("CALL {call} STATUS RINGING")).await;
            }
            Down::Status { call, status } => self.on_status(call, &status).await,
            Down::FailureReason { call, code } => {
                if let Some(c) = self.calls.get_mut(&call) {
                    c.failure_reason = code;
                }
                self.notify(format!("CALL {call} FAILUREREASON {code}"))
                    .await;
            }
            Down::Dtmf { call, digit } => {
                if self.live(call) {
                    self.notify(format!("CALL {call} DTMF {digit}")).await;
                }
            }
            Down::ChatReceived { message } => {
                self.notify(format!("CHATMESSAGE {message} STATUS RECEIVED"))
                    .await;
            }
            Down::ChatStatus { message, status } => {
                self.notify(format!("CHATMESSAGE {message} STATUS {status}"))
                    .await;
            }
            Down::Balance { balance } => {
                self.profile.balance = balance;
                self.notify(format!("PROFILE PSTN_BALANCE {balance}")).await;
            }
            Down::AuthRequest { from, text } => {
                self.notify(format!("USER {from} RECEIVEDAUTHREQUEST {text}"))
                    .await;
            }
            Down::UserStatus { handle, status } => {
                self.notify(format!("USER {handle} ONLINESTATUS {status}"))
                    .await;
            }
            Down::UserStatuses { changes } => {
                for (handle, status) in changes {
                    self.notify(format!("USER {handle} ONLINESTATUS {status}"))
                        .await;
                }
            }
            Down::BuddyStatus { handle, status } => {
                self.notify(format!("USER {handle} BUDDYSTATUS {status}"))
                    .await;
            }
            Down::Fault { fault } => return self.on_fault(fault),
            other => debug!(?other, "ignored network message"),
        }
        None
    }

    fn on_fault(&mut self, fault: Fault) -> Option<ClientExit> {
        warn!(?fault, "fault injected");
        match fault {
            Fault::DropBegin { count } => self.drop_begin = count,
            Fault::AudioDelay { ms } => self.audio.policy.delay = Duration::from_millis(ms),
            Fault::NoAudio { on } => self.audio.policy.never = on,
            Fault::AnswerError { on } => self.config.answer_error = on,
            Fault::Offline { ms } => self.uplink.go_offline(Duration::from_millis(ms)),
            Fault::Die => return Some(ClientExit::Died),
        }
        None
    }
}
