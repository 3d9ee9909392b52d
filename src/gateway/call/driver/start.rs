//! The beginning of a call task: what each direction knows before its machine starts.

use super::Driver;
use crate::gateway::call::machine::{CallMachine, Setup, Timeouts};
use crate::gateway::call::ring;
use crate::gateway::call::{CallContext, CallDone, Inbound, Outbound};
use crate::gateway::registry::Direction;
use tokio::sync::oneshot;
use tracing::{info, Instrument};

/// The outbound call task.
pub(crate) async fn run_outbound(call: Outbound) {
    let Outbound {
        ctx,
        destination,
        channel,
        reservation,
        inbox,
    } = call;
    let uuid = channel.uuid().to_string();
    let span = tracing::info_span!("call", interface = %ctx.cfg.name, call = %uuid,
                                   skype_call = tracing::field::Empty);
    async move {
        reservation.commit();
        ctx.gw.registry.set_uuid(ctx.cfg.id, &uuid);
        ctx.gw.registry.count_call(ctx.cfg.id, Direction::Outbound);
        let setup = Setup {
            direction: Direction::Outbound,
            timeouts: timeouts(&ctx),
            pstn: destination.as_str().starts_with('+'),
        };
        let (control, events) = channel.into_parts();
        let mut driver = Driver::new(ctx, Direction::Outbound, uuid, destination.as_str(), inbox);
        driver.destination = Some(destination);
        driver.channel = Some(control);
        driver.channel_events = Some(events);
        driver.run(CallMachine::outbound(setup)).await;
    }
    .instrument(span)
    .await
}

/// The inbound call task.
pub(crate) async fn run_inbound(call: Inbound) {
    let Inbound {
        ctx,
        skype_call,
        reservation,
        inbox,
    } = call;
    let uuid = uuid::Uuid::new_v4().to_string();
    let span = tracing::info_span!("call", interface = %ctx.cfg.name, call = %uuid, skype_call = %skype_call);
    async move {
        let Some(caller) = ring::take(&ctx, skype_call, reservation).await else {
            ctx.gw.registry.release(ctx.cfg.id);
            let _ = ctx.done.send(CallDone { serial: ctx.serial }).await;
            return;
        };
        ctx.gw.registry.set_uuid(ctx.cfg.id, &uuid);
        ctx.gw.registry.count_call(ctx.cfg.id, Direction::Inbound);
        info!(caller = %caller.handle, name = %caller.name, destination = %ctx.cfg.destination,
              "incoming Skype call");
        let setup = Setup {
            direction: Direction::Inbound,
            timeouts: timeouts(&ctx),
            pstn: false,
        };
        let (socket_tx, socket_rx) = oneshot::channel();
        ctx.gw.pending_inbound.insert(uuid.clone(), socket_tx);
        let mut driver = Driver::new(ctx, Direction::Inbound, uuid, &caller.handle, inbox);
        driver.skype_call = Some(skype_call);
        driver.caller = Some(caller);
        driver.socket = Some(socket_rx);
        driver.run(CallMachine::inbound(setup)).await;
    }
    .instrument(span)
    .await
}

fn timeouts(ctx: &CallContext) -> Timeouts {
    let calls = &ctx.gw.settings.calls;
    Timeouts {
        setup: calls.setup_timeout(),
        ring: calls.ring_timeout(),
        answer: calls.answer_timeout(),
        originate: calls.originate_timeout(),
    }
}
