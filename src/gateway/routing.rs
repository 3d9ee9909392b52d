//! Where a new outbound channel goes: the interface and Skype destination its dial string
//! names, or the cause it is refused with.

use super::causes::{HangupCause, SkypeOutcome};
use super::dialstring::{self, Pick};
use super::interface::{InterfaceHandle, InterfaceRequest};
use super::registry::{ClaimError, Reservation};
use super::Gateway;
use crate::skype::api::{self, Handle};
use crate::switch::outbound::ChannelHandle;
use tracing::{info, warn, Instrument};

/// A new `socket` connection that is not an inbound call's: pick the interface, check the
/// destination, and hand the call to the interface, or hang the channel up with the cause.
pub(crate) async fn place_outbound(gw: Gateway, channel: ChannelHandle) {
    let uuid = channel.uuid().to_string();
    let span = tracing::info_span!("call", call = %uuid);
    async move {
        let (iface, destination, reservation) = match route(&gw, &channel) {
            Ok(routed) => routed,
            Err(cause) => {
                let _ = channel.control.hangup_with(cause).await;
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

fn route(
    gw: &Gateway,
    channel: &ChannelHandle,
) -> Result<(InterfaceHandle, Handle, Reservation), HangupCause> {
    if gw.is_draining() {
        warn!("refusing call: the sidecar is stopping");
        return Err(SkypeOutcome::NoIdleInterface.cause());
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
        let cause = match e {
            ClaimError::NotFound(_) => HangupCause::ChanNotImplemented,
            _ => SkypeOutcome::NoIdleInterface.cause(),
        };
        warn!(%destination, error = %e, cause = cause.as_str(), "refusing call: no interface");
        cause
    })?;
    let Some(iface) = gw
        .interfaces
        .get(&reservation.id())
        .map(|i| i.value().clone())
    else {
        warn!("interface vanished while placing a call");
        return Err(SkypeOutcome::NoIdleInterface.cause());
    };
    Ok((iface, destination, reservation))
}
