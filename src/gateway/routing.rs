//! Where a new outbound channel goes: the interface and Skype destination its dial string
//! names, or the cause it is refused with. A channel whose dialplan asked for overflow
//! (`skypopen_overflow=resume`) is handed back rather than refused when this host has no room,
//! so the dialplan's next `socket` action offers it to the next sidecar host.

use super::causes::{HangupCause, SkypeOutcome};
use super::dialstring::{self, Pick};
use super::interface::{InterfaceHandle, InterfaceRequest};
use super::registry::{ClaimError, Reservation};
use super::Gateway;
use crate::skype::api::{self, Handle};
use crate::switch::outbound::{ChannelData, ChannelHandle, OverflowReason};
use tracing::{info, warn, Instrument};

/// A new `socket` connection that is not an inbound call's: pick the interface, check the
/// destination, and hand the call to the interface, or hang the channel up with the cause.
pub(crate) async fn place_outbound(gw: Gateway, channel: ChannelHandle) {
    let uuid = channel.uuid().to_string();
    let span = tracing::info_span!("call", call = %uuid);
    async move {
        let (iface, destination, reservation) = match route(&gw, &channel) {
            Ok(routed) => routed,
            Err(refusal) => {
                refuse(&gw, channel, refusal).await;
                return;
            }
        };
        info!(interface = %iface.cfg.name, %destination, "outbound call");
        if iface
            .requests
            .send(InterfaceRequest::PlaceCall {
                destination,
                channel,
                reservation,
            })
            .await
            .is_err()
        {
            warn!(interface = %iface.cfg.name, "interface stopped while placing a call");
        }
    }
    .instrument(span)
    .await
}

/// Why a channel is not placed here; `overflow` when another host might still place it.
struct Refusal {
    cause: HangupCause,
    overflow: Option<OverflowReason>,
}

impl From<HangupCause> for Refusal {
    fn from(cause: HangupCause) -> Refusal {
        Refusal {
            cause,
            overflow: None,
        }
    }
}

impl Refusal {
    fn no_room(reason: OverflowReason) -> Refusal {
        Refusal {
            cause: SkypeOutcome::NoIdleInterface.cause(),
            overflow: Some(reason),
        }
    }
}

async fn refuse(gw: &Gateway, channel: ChannelHandle, refusal: Refusal) {
    if let Some(reason) = refusal.overflow.filter(|_| wants_overflow(channel.data())) {
        match channel
            .control
            .hand_back(reason, &gw.settings.cluster.host)
            .await
        {
            Ok(()) => {
                info!(
                    reason = reason.as_str(),
                    "no room on this host: channel handed back to the dialplan"
                );
                return;
            }
            Err(e) => warn!(error = %e, "cannot hand the channel back; hanging it up"),
        }
    }
    let _ = channel.control.hangup_with(refusal.cause).await;
}

/// The N-host dialplan sets `skypopen_overflow=resume`; the one-host dialplan does not, and
/// there a full host refuses the call as it always did.
fn wants_overflow(data: &ChannelData) -> bool {
    data.variable("skypopen_overflow")
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("resume"))
}

fn route(
    gw: &Gateway,
    channel: &ChannelHandle,
) -> Result<(InterfaceHandle, Handle, Reservation), Refusal> {
    if gw.is_draining() {
        warn!("refusing call: the sidecar is stopping");
        return Err(Refusal::no_room(OverflowReason::Stopping));
    }
    let number = channel.data().destination_number().unwrap_or("");
    let target = dialstring::parse(number).map_err(|e| {
        warn!(error = %e, "refusing call");
        SkypeOutcome::InvalidDestination.cause()
    })?;
    let destination = api::validate_destination(&target.destination).map_err(|e| {
        warn!(destination = %target.destination, error = %e, "refusing call: invalid Skype destination");
        SkypeOutcome::InvalidDestination.cause()
    })?;
    let reservation = match &target.pick {
        Pick::Hunt => gw.registry.hunt(None),
        Pick::Named(name) => gw.registry.claim(name),
    };
    let reservation = reservation.map_err(|e| {
        let refusal = match e {
            ClaimError::NotFound(_) => Refusal {
                cause: HangupCause::ChanNotImplemented,
                overflow: Some(OverflowReason::UnknownInterface),
            },
            _ => Refusal::no_room(OverflowReason::NoIdleInterface),
        };
        warn!(%destination, error = %e, cause = refusal.cause.as_str(), "refusing call: no interface");
        refusal
    })?;
    let Some(iface) = gw
        .interfaces
        .get(&reservation.id())
        .map(|i| i.value().clone())
    else {
        warn!("interface vanished while placing a call");
        return Err(Refusal::no_room(OverflowReason::NoIdleInterface));
    };
    Ok((iface, destination, reservation))
}
