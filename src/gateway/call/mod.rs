//! One task per call. It owns the Skype call id, the FreeSWITCH channel, the media path and the
//! timers, and it always ends by tearing down both sides and returning the interface.
//!
//! The call's logic is [`machine::CallMachine`], a state machine with no I/O that unit tests
//! drive through every flow and cause; [`driver`] carries its actions out on the real sockets.
//!
//! Outbound (FreeSWITCH to Skype): `CALL <dest>`, progress relayed (RINGING → ring_ready,
//! EARLYMEDIA → pre_answer with audio), on INPROGRESS the channel is answered and the media
//! path opens. Inbound (Skype to FreeSWITCH): the caller is looked up ([`ring`]), `originate`
//! brings the call into the dialplan with a `socket` back to us; when that socket connects
//! (FreeSWITCH has answered) the Skype call is answered and the media path opens.

mod driver;
pub mod machine;
mod ring;

pub(crate) use driver::{run_inbound, run_outbound};

use super::registry::Reservation;
use super::Gateway;
use crate::config::InterfaceConfig;
use crate::skype::api::{CallAction, CallId, Command, Handle, Incoming};
use crate::skype::session::SessionHandle;
use crate::switch::outbound::ChannelHandle;
use tokio::sync::mpsc;
use tracing::debug;

/// What the interface actor forwards to a call.
#[derive(Debug, Clone)]
pub enum CallInput {
    Skype(Incoming),
    /// The client window or session went away.
    ClientGone(String),
    /// The client lost the Skype network (CONNSTATUS OFFLINE, ERROR 36).
    NotOnline,
}

/// A call task says it is over; `serial` tells old calls from new ones.
pub(crate) struct CallDone {
    pub serial: u64,
}

/// What every call task needs from its interface.
pub(crate) struct CallContext {
    pub gw: Gateway,
    pub cfg: InterfaceConfig,
    pub session: SessionHandle,
    pub serial: u64,
    pub done: mpsc::Sender<CallDone>,
}

pub(crate) struct Outbound {
    pub ctx: CallContext,
    pub destination: Handle,
    pub channel: ChannelHandle,
    pub reservation: Reservation,
    pub inbox: mpsc::Receiver<CallInput>,
}

pub(crate) struct Inbound {
    pub ctx: CallContext,
    pub skype_call: CallId,
    pub reservation: Reservation,
    pub inbox: mpsc::Receiver<CallInput>,
}

/// Rejects (or ends) a Skype call: `ALTER CALL <id> HANGUP` then `END HANGUP`, the order the
/// original module was seen to use; the client answers the second with an error we ignore.
pub(crate) fn reject(session: &SessionHandle, id: CallId) {
    for action in [CallAction::Hangup, CallAction::EndHangup] {
        if let Err(e) = session.send(Command::AlterCall { id, action }) {
            debug!(skype_call = %id, error = %e, "cannot send hangup to the client");
        }
    }
}
