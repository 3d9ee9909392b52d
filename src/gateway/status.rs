//! `skypopen_status [json]`: one screen for an operator (the FreeSWITCH link, every interface,
//! the live calls, the chats waiting), as text or as JSON for scripts. `skypopen status` on
//! the command line prints it.

use super::observe::{health, usable_count};
use super::Gateway;
use crate::switch::inbound::LinkState;
use serde_json::json;
use std::fmt::Write as _;

pub fn render(gw: &Gateway, as_json: bool) -> String {
    let link = gw.switch.state().borrow().clone();
    let link_text = link.to_string();
    let slots = gw.registry.snapshot();
    let calls = gw.calls_by_start();
    let waiting = gw.metrics.chats_waiting.get();
    let verdict = health(gw);
    if as_json {
        let value = json!({
            "healthy": verdict.is_ok(),
            "summary": match &verdict { Ok(s) | Err(s) => s },
            "host": gw.settings.cluster.host,
            "freeswitch": {
                "address": gw.switch.addr().to_string(),
                "connected": link == LinkState::Up,
                "state": link_text,
            },
            "interfaces": slots.iter().map(|s| json!({
                "id": s.id,
                "name": s.name,
                "skype_user": s.skype_user,
                "state": s.state.label(),
                "callflow": s.callflow.label(),
                "usable": s.is_usable(),
                "uuid": s.uuid,
            })).collect::<Vec<_>>(),
            "calls": calls.iter().map(|c| json!({
                "uuid": c.uuid,
                "interface": c.interface,
                "skype_call": c.skype_call_id,
                "direction": c.direction().label(),
                "seconds": c.started.elapsed().as_secs(),
                "skype_party": c.remote,
                "freeswitch_party": c.local,
            })).collect::<Vec<_>>(),
            "chats_waiting": waiting,
        });
        return format!("{value}\n");
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        match &verdict {
            Ok(summary) => format!("OK    {summary}"),
            Err(why) => format!("DOWN  {why}"),
        }
    );
    let _ = writeln!(out, "Host        {}", gw.settings.cluster.host);
    let _ = writeln!(out, "FreeSWITCH  {}  {link_text}", gw.switch.addr());
    let usable = usable_count(&slots);
    let _ = writeln!(out, "Interfaces  {} ({usable} usable)", slots.len());
    for s in &slots {
        let _ = writeln!(
            out,
            "  {:<14} {:<14} {:<8} {:<12} {}",
            s.name,
            s.skype_user,
            s.state.label(),
            s.callflow.label(),
            s.uuid
        );
    }
    let _ = writeln!(out, "Calls       {} up", calls.len());
    for c in &calls {
        let _ = writeln!(
            out,
            "  {} {} {} {}s {} <-> {}",
            c.uuid,
            c.interface,
            c.direction().label(),
            c.started.elapsed().as_secs(),
            c.remote,
            c.local
        );
    }
    let _ = writeln!(out, "Chats       {waiting} waiting for FreeSWITCH");
    out
}
