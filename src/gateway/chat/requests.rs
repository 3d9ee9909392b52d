//! Chats FreeSWITCH asks us to send (`SEND_MESSAGE`, and the MESSAGE its own
//! `chat SKYPE|...` fires), as typed requests from the switch link.

use super::outgoing::send_chat;
use crate::gateway::Gateway;
use crate::switch::requests::{ChatRequest, SwitchRequest};
use tracing::{info, warn};

/// Consumes the chat requests until the gateway stops.
pub async fn serve(gw: Gateway) {
    let mut requests = gw.switch.requests();
    while let Some(request) = requests.next(&gw.cancel, "chat requests").await {
        if let SwitchRequest::Chat(request) = request {
            execute(&gw, request).await;
        }
    }
}

async fn execute(gw: &Gateway, request: ChatRequest) {
    // A hint that names no interface (FreeSWITCH's own chat may carry other hints) falls
    // back to the sender's account.
    let iface = request
        .hint
        .as_deref()
        .filter(|hint| gw.interface_by_name(hint).is_some());
    match send_chat(
        gw,
        iface,
        request.from.as_deref(),
        &request.to,
        &request.body,
    )
    .await
    {
        Ok(sent) => info!(via = request.via, interface = %sent.interface, to = %request.to,
                          "chat requested by FreeSWITCH sent"),
        Err(e) => warn!(via = request.via, from = ?request.from, to = %request.to, error = %e,
                        "chat requested by FreeSWITCH not sent"),
    }
}
