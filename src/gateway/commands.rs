//! The `sk`, `skypopen`, `skypopen_chat` and `chat` commands, as the listener runs them.
//!
//! First cut: `sk list [full]` and `sk calls`; the rest of the family follows.

use super::Gateway;
use crate::switch::listener::{ApiFuture, ApiRequest, CommandTable};
use std::fmt::Write as _;

const NO_CONSOLE: &str = "sk console is NOT yet assigned\n";

pub fn register(table: &CommandTable, gw: &Gateway) {
    let gw = gw.clone();
    table.register("sk", move |request: ApiRequest| -> ApiFuture {
        let gw = gw.clone();
        Box::pin(async move { sk(&gw, &request.args) })
    });
}

fn sk(gw: &Gateway, args: &str) -> String {
    let words: Vec<&str> = args.split_whitespace().collect();
    let mut out = String::from(NO_CONSOLE);
    match words.as_slice() {
        ["list"] => out.push_str(&gw.registry.render_list(false)),
        ["list", "full"] => out.push_str(&gw.registry.render_list(true)),
        ["calls"] => out.push_str(&render_calls(gw)),
        _ => out.push_str("-ERR not available yet\n"),
    }
    out
}

fn render_calls(gw: &Gateway) -> String {
    let mut calls: Vec<_> = gw.live_calls.iter().map(|c| c.value().clone()).collect();
    calls.sort_by_key(|c| c.started);
    let mut out = String::from(
        "UUID\tInterface\tSkype call\tDirection\tDuration\tSkype party\tFreeSWITCH party\n",
    );
    for c in &calls {
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}s\t{}\t{}",
            c.uuid,
            c.interface,
            c.skype_call_id
                .map(|i| i.to_string())
                .unwrap_or_else(|| "-".into()),
            if c.inbound { "inbound" } else { "outbound" },
            c.started.elapsed().as_secs(),
            c.remote,
            c.local
        );
    }
    let _ = writeln!(out, "\nTotal calls: {}", calls.len());
    out
}
