//! Chats FreeSWITCH asks us to send (`SEND_MESSAGE`, and the MESSAGE its own
//! `chat SKYPE|...` fires), as typed requests from the switch link. One that no client of its
//! account can take right now waits (see [`super::waiting`]) and is tried again every second.
//! Every sidecar subscribed to FreeSWITCH sees every request; with `cluster.arbitrate`, those
//! that serve the sender claim it in mod_hash and only the winner sends it.

use super::outgoing::{send_chat, ChatError};
use super::receipts::{failed_before_sending, ChatTicket};
use super::waiting::{Full, WaitingChats};
use crate::gateway::cluster::{Claim, Subject, Verdict};
use crate::gateway::Gateway;
use crate::switch::requests::{ChatRequest, Requests, SwitchRequest};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Chats waiting for their account in all; more are refused (and logged).
const WAITING_CAPACITY: usize = 1024;
/// How long a chat waits for a client of its account before it is given up.
const PATIENCE: Duration = Duration::from_secs(30);
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// Consumes the chat requests until the gateway stops.
pub async fn serve(gw: Gateway, mut requests: Requests) {
    let mut waiting = WaitingChats::new(WAITING_CAPACITY, PATIENCE);
    let mut retry = tokio::time::interval(RETRY_EVERY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            request = requests.next(&gw.cancel, "chat requests") => {
                let Some(request) = request else { break };
                if let SwitchRequest::Chat(request) = request {
                    take(&gw, &mut waiting, request).await;
                }
            }
            _ = retry.tick(), if !waiting.is_empty() => retry_waiting(&gw, &mut waiting).await,
        }
    }
    if !waiting.is_empty() {
        warn!(
            count = waiting.len(),
            "chats requested by FreeSWITCH still waiting for a client at shutdown; not sent"
        );
    }
}

/// Who sends: the interface the hint names, else the account.
fn sender(gw: &Gateway, request: &ChatRequest) -> String {
    match interface_hint(gw, request) {
        Some(name) => format!("interface {name}"),
        None => request.from.as_deref().unwrap_or("").to_lowercase(),
    }
}

/// A hint that names no interface (FreeSWITCH's own chat may carry other hints) falls back to
/// the sender's account.
fn interface_hint<'a>(gw: &Gateway, request: &'a ChatRequest) -> Option<&'a str> {
    request
        .hint
        .as_deref()
        .filter(|hint| gw.interface_by_name(hint).is_some())
}

async fn take(gw: &Gateway, waiting: &mut WaitingChats<ChatRequest>, request: ChatRequest) {
    let sender = sender(gw, &request);
    match whose(gw, &request).await {
        Whose::OtherHost => return,
        Whose::Ours(None) => {}
        // Claimed once, when the request arrives: the other hosts have let it go by then, so
        // the claim is marked done whether it is sent now, later or never.
        Whose::Ours(Some(claim)) => gw.cluster.finish(claim).await,
    }
    if waiting.holds(&sender) {
        // Behind the ones already waiting, so the dialog stays in order.
        wait(gw, waiting, &sender, request);
        return;
    }
    match execute(gw, &request).await {
        Ok(()) => {}
        Err(e) if worth_waiting(&e) => {
            info!(via = request.via, %sender, to = %request.to, error = %e,
                  "no client of the sender can take the chat now; it waits");
            wait(gw, waiting, &sender, request);
        }
        Err(e) => {
            warn!(via = request.via, from = ?request.from, to = %request.to, error = %e,
                  "chat requested by FreeSWITCH not sent");
            report_failure(gw, &request, &e.to_string());
        }
    }
}

/// Which host sends a request.
enum Whose {
    /// This one, with its claim; no claim when none is needed (one host, no event identity,
    /// or a sender this host does not serve, which fails here anyway).
    Ours(Option<Claim>),
    OtherHost,
}

async fn whose(gw: &Gateway, request: &ChatRequest) -> Whose {
    if !gw.cluster.arbitrates() || !serves_sender(gw, request) {
        return Whose::Ours(None);
    }
    let Some(event_id) = request.event_id.as_deref() else {
        return Whose::Ours(None);
    };
    match gw.cluster.claim(Subject::Request, event_id).await {
        Ok(Verdict::Mine(claim)) => Whose::Ours(Some(claim)),
        Ok(Verdict::Theirs { holder }) => {
            info!(via = request.via, to = %request.to, %holder, "chat requested by FreeSWITCH is sent by another host");
            Whose::OtherHost
        }
        Ok(Verdict::Done) => Whose::OtherHost,
        Err(e) => {
            warn!(via = request.via, error = %e, "cannot claim the chat request in FreeSWITCH; sending it");
            Whose::Ours(None)
        }
    }
}

fn serves_sender(gw: &Gateway, request: &ChatRequest) -> bool {
    interface_hint(gw, request).is_some()
        || request
            .from
            .as_deref()
            .is_some_and(|from| !gw.registry.by_user(from).is_empty())
}

fn wait(gw: &Gateway, waiting: &mut WaitingChats<ChatRequest>, sender: &str, request: ChatRequest) {
    if let Err(Full(request)) = waiting.push(sender, request, Instant::now()) {
        warn!(via = request.via, %sender, to = %request.to, waiting = waiting.len(),
              "too many chats waiting for their clients; this one is not sent");
        report_failure(gw, &request, "too many chats waiting for their clients");
    }
}

async fn retry_waiting(gw: &Gateway, waiting: &mut WaitingChats<ChatRequest>) {
    for sender in waiting.senders() {
        loop {
            let expired = |gone: super::waiting::Waiting<ChatRequest>| {
                warn!(via = gone.request.via, %sender, to = %gone.request.to,
                      waited = ?gone.since.elapsed(),
                      "no client of the sender came back in time; chat not sent");
                report_failure(
                    gw,
                    &gone.request,
                    "no client of the sender came back in time",
                );
            };
            let Some(request) = waiting.front(&sender, Instant::now(), expired) else {
                break;
            };
            let request = request.clone();
            match execute(gw, &request).await {
                Ok(()) => {
                    waiting.pop(&sender);
                }
                Err(e) if worth_waiting(&e) => break,
                Err(e) => {
                    warn!(via = request.via, %sender, to = %request.to, error = %e,
                          "chat requested by FreeSWITCH not sent");
                    report_failure(gw, &request, &e.to_string());
                    waiting.pop(&sender);
                }
            }
        }
    }
}

/// The requester's id for the chat, else the requesting event's identity, else a new one.
fn ticket(request: &ChatRequest) -> ChatTicket {
    let id = request
        .chat_id
        .clone()
        .or_else(|| request.event_id.clone())
        .unwrap_or_else(|| ChatTicket::new().id);
    ChatTicket {
        id,
        request_event: request.event_id.clone(),
    }
}

/// Tells the requester that its chat will not be sent.
fn report_failure(gw: &Gateway, request: &ChatRequest, reason: &str) {
    let sender = request.from.as_deref().unwrap_or("");
    let interface = interface_hint(gw, request).unwrap_or("");
    gw.notices.post(failed_before_sending(
        &ticket(request),
        interface,
        sender,
        &request.to,
        reason,
    ));
}

/// Failures a client coming back can cure; the others (bad input, unknown sender) cannot.
fn worth_waiting(e: &ChatError) -> bool {
    matches!(e, ChatError::Client { .. } | ChatError::NoChat { .. })
}

async fn execute(gw: &Gateway, request: &ChatRequest) -> Result<(), ChatError> {
    let sent = send_chat(
        gw,
        interface_hint(gw, request),
        request.from.as_deref(),
        &request.to,
        &request.body,
        &ticket(request),
    )
    .await?;
    info!(via = request.via, interface = %sent.interface, to = %request.to,
          "chat requested by FreeSWITCH sent");
    Ok(())
}
