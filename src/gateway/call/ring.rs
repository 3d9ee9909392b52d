//! An incoming ring before its call starts: who is calling, and whether this interface takes
//! the ring. Several interfaces logged in as one account all see the same ring; the first to
//! claim (account, caller) takes it, so one Skype call makes one FreeSWITCH call. Siblings on
//! this host meet in `ring_claims`; with `cluster.arbitrate` the winner here then claims the
//! ring in FreeSWITCH's mod_hash against the other hosts.

use super::CallContext;
use crate::gateway::cluster::{ring_key, Claim, Subject, Verdict};
use crate::gateway::registry::Reservation;
use crate::skype::api::{CallEvent, CallId, CallProperty, Command, Notification};
use crate::skype::session::SessionHandle;
use dashmap::mapref::entry::Entry;
use std::time::Duration;
use tracing::{debug, warn};

/// How long a transfer note (spec 5.4) names the interface a transferred call came from.
const TRANSFER_NOTE_LIFETIME: Duration = Duration::from_secs(30);

/// The caller of a ring this interface took.
pub(super) struct Caller {
    pub handle: String,
    pub name: String,
    /// The (account, caller) key this interface holds in `ring_claims` until the call ends.
    pub claim: (String, String),
    /// The account that transferred the call here, when it was transferred.
    pub initial_skype_user: Option<String>,
    /// The ring's claim against the other hosts, released when the call ends.
    pub cluster_claim: Option<Claim>,
}

/// Reads the caller and claims the ring; `None` when a sibling interface took it already
/// (the reservation is then given back).
pub(super) async fn take(
    ctx: &CallContext,
    id: CallId,
    reservation: Reservation,
) -> Option<Caller> {
    let handle = partner(&ctx.session, id, CallProperty::PartnerHandle)
        .await
        .unwrap_or_default();
    let name = partner(&ctx.session, id, CallProperty::PartnerDispname)
        .await
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| handle.clone());
    let claim = (
        ctx.cfg.skype_user.to_ascii_lowercase(),
        handle.to_ascii_lowercase(),
    );
    match ctx.gw.ring_claims.entry(claim.clone()) {
        Entry::Occupied(taken) => {
            debug!(caller = %handle, by = taken.get(), "ring already taken by a sibling interface");
            drop(reservation);
            return None;
        }
        Entry::Vacant(free) => {
            free.insert(ctx.cfg.id);
        }
    }
    let cluster_claim = match claim_across_hosts(ctx, &claim).await {
        Some(cluster_claim) => cluster_claim,
        None => {
            ctx.gw.ring_claims.remove(&claim);
            drop(reservation);
            return None;
        }
    };
    reservation.commit();
    let initial_skype_user = ctx
        .gw
        .transfers
        .remove(&ctx.cfg.id)
        .map(|(_, note)| note)
        .filter(|n| {
            n.at.elapsed() < TRANSFER_NOTE_LIFETIME && n.caller.eq_ignore_ascii_case(&handle)
        })
        .map(|n| n.initial_skype_user);
    Some(Caller {
        handle,
        name,
        claim,
        initial_skype_user,
        cluster_claim: Some(cluster_claim),
    })
}

/// `None` when another host took the ring. When FreeSWITCH cannot be asked, this host takes
/// it: a call answered twice is better than a call nobody answers.
async fn claim_across_hosts(ctx: &CallContext, claim: &(String, String)) -> Option<Claim> {
    let key = ring_key(&claim.0, &claim.1);
    match ctx.gw.cluster.claim(Subject::Ring, &key).await {
        Ok(Verdict::Mine(won)) => Some(won),
        Ok(Verdict::Theirs { holder }) => {
            debug!(caller = %claim.1, %holder, "ring taken by another host");
            None
        }
        Ok(Verdict::Done) => None,
        Err(e) => {
            warn!(caller = %claim.1, error = %e, "cannot claim the ring in FreeSWITCH; taking it here");
            Some(ctx.gw.cluster.unclaimed(Subject::Ring, &key))
        }
    }
}

async fn partner(session: &SessionHandle, id: CallId, property: CallProperty) -> Option<String> {
    match session.request(Command::GetCall { id, property }).await {
        Ok(Notification::Call {
            event: CallEvent::PartnerHandle(v) | CallEvent::PartnerDispname(v),
            ..
        }) => Some(v),
        Ok(other) => {
            debug!(reply = %other, "unexpected reply");
            None
        }
        Err(e) => {
            warn!(error = %e, "cannot read the caller");
            None
        }
    }
}
