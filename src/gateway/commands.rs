//! The `sk`, `skypopen`, `skypopen_chat` and `chat` commands, served by the ESL-compatible
//! listener and, through FreeSWITCH, by `CUSTOM skypopen::command` events.
//!
//! Outputs follow the original module byte for byte where it had them (spec 9; the golden files
//! in `tests/golden/sk/`), with these deliberate differences: interface names match exactly
//! (no prefix surprises), `Total Interfaces` counts interfaces, the `sk console` choice belongs
//! to one listener connection, and raw API text returns the client's reply.

use super::chat::{send_chat, ChatTicket};
use super::interface::InterfaceHandle;
use super::registry::IfaceState;
use super::Gateway;
use crate::config::Settings;
use crate::skype::api::{Command, Notification, ProfileProperty};
use crate::skype::session::SessionHandle;
use crate::switch::listener::{ApiFuture, ApiRequest, CommandTable, SessionContext};
use crate::switch::requests::{CommandRequest, SwitchRequest};
use std::fmt::Write as _;
use std::sync::Arc;
use tracing::{info, warn};

const SK_SYNTAX: &str = "list [full] || console || skype_API_msg || remove < skypeusername | #interface_name | #interface_id > || reload";
const SKYPOPEN_SYNTAX: &str = "interface_name skype_API_msg";
const SKYPOPEN_CHAT_SYNTAX: &str = "interface_name remote_skypename TEXT";
/// Per-connection key of the `sk console` choice.
const CONSOLE_KEY: &str = "sk_console";

const SK_HELP: &str = "\
sk list [full]                     interfaces, states and counters (* = where the next RR hunt starts)
sk calls                           live calls: ids, durations, both ends
sk console <interface>             choose the interface `sk <raw>` talks to (this connection only)
sk <Skype API text>                send raw API text to the console interface; prints its reply
sk balances                        SkypeOut balance of every interface
sk contacts <interface>            the interface's Skype contacts, their status and since when
sk auth <interface> [accept|deny <handle>]
                                   contact requests waiting (contact_requests = \"ask\"), or answer one
sk reload                          re-read the configuration: add new interfaces, apply changed
                                   settings to idle ones
sk remove <skype_user>|#<id>|#<name> [force]
                                   stop an interface (a busy one only with force)
skypopen <interface> <Skype API text>      raw API text to one interface; prints its reply
skypopen_chat <interface> <remote> <text>  send a chat from one interface
skypopen_contacts <interface>              the interface's contacts as JSON
chat SKYPE|<skype_user>|<remote>|<text>    send a chat from the first interface of that account
";

/// Registers the family into the listener's table and serves the same commands arriving as
/// `CUSTOM skypopen::command` events on the inbound connection.
pub fn register(table: &Arc<CommandTable>, gw: &Gateway) {
    let g = gw.clone();
    table.register("sk", move |r: ApiRequest| -> ApiFuture {
        let g = g.clone();
        Box::pin(async move { sk(&g, &r.args, &r.session).await })
    });
    let g = gw.clone();
    table.register("skypopen", move |r: ApiRequest| -> ApiFuture {
        let g = g.clone();
        Box::pin(async move { skypopen(&g, &r.args).await })
    });
    let g = gw.clone();
    table.register("skypopen_chat", move |r: ApiRequest| -> ApiFuture {
        let g = g.clone();
        Box::pin(async move { skypopen_chat(&g, &r.args).await })
    });
    let g = gw.clone();
    table.register("chat", move |r: ApiRequest| -> ApiFuture {
        let g = g.clone();
        Box::pin(async move { chat(&g, &r.args).await })
    });
    let g = gw.clone();
    table.register("skypopen_contacts", move |r: ApiRequest| -> ApiFuture {
        let text = contacts(&g, r.args.trim(), true);
        Box::pin(async move { text })
    });
    let g = gw.clone();
    table.register("skypopen_status", move |r: ApiRequest| -> ApiFuture {
        let as_json = r.args.trim().eq_ignore_ascii_case("json");
        let text = super::status::render(&g, as_json);
        Box::pin(async move { text })
    });
    gw.tasks.spawn(serve_events(gw.clone(), Arc::clone(table)));
}

/// `sk contacts <name>` / `skypopen_contacts <name>`.
fn contacts(gw: &Gateway, name: &str, as_json: bool) -> String {
    let Some(slot) = gw.registry.by_name(name) else {
        return format!("-ERR no interface named {name}\n");
    };
    let list = gw.contacts.list(slot.id);
    if as_json {
        super::contacts::render_json(&slot.name, &slot.skype_user, &list)
    } else {
        super::contacts::render_table(&slot.name, &slot.skype_user, &list)
    }
}

fn console_line(session: &SessionContext) -> String {
    match session.get(CONSOLE_KEY) {
        Some(name) => format!("sk console is: |||{name}|||\n"),
        None => "sk console is NOT yet assigned\n".to_string(),
    }
}

/// `sk ...`: every output starts with the console line, as the original's did.
pub async fn sk(gw: &Gateway, args: &str, session: &SessionContext) -> String {
    let mut out = console_line(session);
    let words: Vec<&str> = args.split_whitespace().collect();
    let Some(first) = words.first() else {
        out.push_str(SK_SYNTAX);
        return out;
    };
    match first.to_ascii_lowercase().as_str() {
        "list" => {
            let full = words.get(1).is_some_and(|w| w.eq_ignore_ascii_case("full"));
            out.push_str(&gw.registry.render_list(full));
            // After the original's table, so tools that parse it still find it unchanged.
            out.push_str(&format!("Host: {}\n", gw.settings.cluster.host));
        }
        "calls" => out.push_str(&render_calls(gw)),
        "help" => out.push_str(SK_HELP),
        "console" => match words.as_slice() {
            [_, name] => match gw.registry.by_name(name) {
                Some(slot) => {
                    session.set(CONSOLE_KEY, slot.name.clone());
                    let _ = writeln!(
                        out,
                        "sk console is now: globals.SKYPOPEN_INTERFACES[{}].name=|||{}|||",
                        slot.id, slot.name
                    );
                    let _ = writeln!(out, "sk console is: |||{}|||", slot.name);
                }
                None => {
                    let _ = writeln!(
                        out,
                        "ERROR: A Skypopen interface with name='{name}' was not found"
                    );
                }
            },
            _ => out.push_str("-ERR Usage: sk console interface_name\n"),
        },
        "balances" => out.push_str(&balances(gw).await),
        "auth" => out.push_str(&super::contacts::sk_auth(gw, &words[1..]).await),
        "contacts" => match words.as_slice() {
            [_, name] => out.push_str(&contacts(gw, name, false)),
            _ => out.push_str("-ERR Usage: sk contacts interface_name\n"),
        },
        "reload" => out.push_str(&reload(gw).await),
        "remove" => match words.as_slice() {
            [_, target] => out.push_str(&remove(gw, target, false).await),
            [_, target, force] if force.eq_ignore_ascii_case("force") => {
                out.push_str(&remove(gw, target, true).await)
            }
            _ => out.push_str("-ERR Usage: sk remove interface_name\n"),
        },
        word => match session.get(CONSOLE_KEY) {
            None if looks_like_a_subcommand(word, first) => {
                let _ = writeln!(
                    out,
                    "-ERR unknown sk command `{first}`: `sk help` lists them (raw Skype API text \
                     goes to the console interface, chosen with `sk console <interface>`)"
                );
            }
            None => out.push_str("sk console is NOT yet assigned\n"),
            Some(name) => match gw.interface_by_name(&name) {
                None => {
                    let _ = writeln!(out, "-ERR console interface {name} no longer exists");
                }
                Some(iface) => raw_reply(&mut out, &iface.session, args.trim()).await,
            },
        },
    }
    out
}

/// Skype API commands are written in capitals (`GET USERSTATUS`); a lower-case word the
/// family does not know is a mistyped subcommand, not raw text.
fn looks_like_a_subcommand(lowered: &str, written: &str) -> bool {
    written == lowered && written.chars().all(|c| c.is_ascii_lowercase() || c == '_')
}

/// Whether a command's output reports a failure (what `skypopen sk` turns into its exit
/// status): `-ERR ...`, the original's `ERROR...` lines and the client's `ERROR <n>` replies,
/// `... failed`, and raw text sent with no console chosen.
pub fn output_failed(output: &str) -> bool {
    let mut no_console = 0;
    output.lines().any(|line| {
        if line == "sk console is NOT yet assigned" {
            no_console += 1;
        }
        line.starts_with("-ERR") || line.starts_with("ERROR") || line.ends_with(" failed")
    }) || no_console > 1
}

/// `skypopen <interface> <raw API text>`.
pub async fn skypopen(gw: &Gateway, args: &str) -> String {
    let args = args.trim();
    let Some((name, raw)) = args
        .split_once(' ')
        .filter(|(_, raw)| !raw.trim().is_empty())
    else {
        return format!("ERROR, usage: {SKYPOPEN_SYNTAX}");
    };
    let (iface, mut out) = match using_interface(gw, name) {
        Ok(found) => found,
        Err(error) => return error,
    };
    raw_reply(&mut out, &iface.session, raw.trim()).await;
    out
}

/// The named interface and the `Using interface:` line the original printed before its
/// answer, or the original's error when there is no such interface.
fn using_interface(gw: &Gateway, name: &str) -> Result<(InterfaceHandle, String), String> {
    let Some(iface) = gw.interface_by_name(name) else {
        return Err(format!(
            "ERROR: A Skypopen interface with name='{name}' was not found\n"
        ));
    };
    let using = format!(
        "Using interface: globals.SKYPOPEN_INTERFACES[{}].name=|||{}|||\n",
        iface.cfg.id, iface.cfg.name
    );
    Ok((iface, using))
}

/// Sends an operator's raw API text to the client; its reply, or `-ERR` with why not, goes
/// on a line of `out`.
async fn raw_reply(out: &mut String, session: &SessionHandle, text: &str) {
    match session.raw(text).await {
        Ok(reply) => {
            let _ = writeln!(out, "{reply}");
        }
        Err(e) => {
            let _ = writeln!(out, "-ERR {e}");
        }
    }
}

/// `skypopen_chat <interface> <remote> <text>`.
pub async fn skypopen_chat(gw: &Gateway, args: &str) -> String {
    let mut parts = args.trim().splitn(3, ' ');
    let (Some(name), Some(remote), Some(text)) = (parts.next(), parts.next(), parts.next()) else {
        return format!("ERROR, usage: {SKYPOPEN_CHAT_SYNTAX}");
    };
    let (_, mut out) = match using_interface(gw, name) {
        Ok(found) => found,
        Err(error) => return error,
    };
    // The id comes back on success; the chat's `skypopen::chat_status` notices carry it.
    match send_chat(gw, Some(name), None, remote, text, &ChatTicket::new()).await {
        Ok(sent) => {
            let _ = writeln!(out, "+OK {}", sent.chat_id);
        }
        Err(e) => {
            let _ = writeln!(out, "-ERR {e}");
        }
    }
    out
}

/// FreeSWITCH's own `chat <proto>|<from>|<to>|<text>` syntax, for the SKYPE protocol. Its
/// replies: `Sent <chat id>` (FreeSWITCH's `Sent`, then the id the chat's
/// `skypopen::chat_status` notices carry) or `Error! Message Not Sent`, without a newline.
pub async fn chat(gw: &Gateway, args: &str) -> String {
    let mut parts = args.trim_start().splitn(4, '|');
    let (Some(proto), Some(from), Some(to), Some(text)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return "-ERR Usage: chat SKYPE|<skype_user>|<remote>|<text>\n".to_string();
    };
    if !proto.trim().eq_ignore_ascii_case("skype") {
        return "Error! Message Not Sent".to_string();
    }
    match send_chat(
        gw,
        None,
        Some(from.trim()),
        to.trim(),
        text,
        &ChatTicket::new(),
    )
    .await
    {
        Ok(sent) => format!("Sent {}", sent.chat_id),
        Err(e) => {
            warn!(error = %e, "chat not sent");
            "Error! Message Not Sent".to_string()
        }
    }
}

fn render_calls(gw: &Gateway) -> String {
    let calls = gw.calls_by_start();
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
            c.direction().label(),
            c.started.elapsed().as_secs(),
            c.remote,
            c.local
        );
    }
    let _ = writeln!(out, "\nTotal calls: {}", calls.len());
    out
}

/// The original asked both values untagged and read "the last message" 20 ms later; tagged
/// requests get the right replies however slow the client is.
async fn balances(gw: &Gateway) -> String {
    let mut out = String::from("  Name  \tBalance\tCurrency\n  ====  \t=======\t========\n");
    let mut ifaces: Vec<_> = gw.interfaces.iter().map(|e| e.value().clone()).collect();
    ifaces.sort_by_key(|i| i.cfg.id);
    for iface in ifaces {
        let balance = iface
            .session
            .request(Command::GetProfile(ProfileProperty::PstnBalance))
            .await;
        let currency = iface
            .session
            .request(Command::GetProfile(ProfileProperty::PstnBalanceCurrency))
            .await;
        match (balance, currency) {
            (Ok(b), Ok(c)) => {
                let (Some(b), Some(c)) = (profile_value(&b), profile_value(&c)) else {
                    continue;
                };
                let _ = writeln!(out, "  {} \t{b}\t{c}", iface.cfg.name);
            }
            (Err(e), _) | (_, Err(e)) => {
                info!(interface = %iface.cfg.name, error = %e, "no balance");
            }
        }
    }
    out
}

fn profile_value(n: &Notification) -> Option<String> {
    match n {
        Notification::Profile { value, .. } => Some(value.clone()),
        _ => None,
    }
}

/// Re-reads the configuration file. New interfaces start; idle interfaces whose settings
/// changed restart with them; busy ones keep running unchanged until the next reload.
async fn reload(gw: &Gateway) -> String {
    let path = gw.settings.path.clone();
    let loaded = tokio::task::spawn_blocking(move || Settings::load(&path)).await;
    let fresh = match loaded {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return format!("{e}\nsk reload failed\n"),
        Err(e) => return format!("-ERR {e}\nsk reload failed\n"),
    };
    let mut out = String::new();
    for cfg in &fresh.interfaces {
        let current = gw.interfaces.get(&cfg.id).map(|h| h.cfg.clone());
        match current {
            None => {
                gw.add_interface(cfg.clone());
                if let Some(supervisor) = gw.supervisor.get() {
                    if let Err(e) = supervisor.add(cfg.clone()) {
                        let _ = writeln!(out, "{}: client not started: {e}", cfg.name);
                    }
                }
                let _ = writeln!(out, "{}: added", cfg.name);
            }
            Some(old) if old == *cfg => {
                let _ = writeln!(out, "{}: unchanged", cfg.name);
            }
            Some(old) => {
                let busy = gw.registry.get(cfg.id).is_some_and(|s| {
                    !matches!(
                        s.state,
                        IfaceState::Idle | IfaceState::Down | IfaceState::Dead
                    )
                });
                if busy {
                    let _ = writeln!(
                        out,
                        "{}: busy, changes not applied (reload again when idle)",
                        cfg.name
                    );
                } else if old.x11_display != cfg.x11_display || old.skype_user != cfg.skype_user {
                    let _ = writeln!(
                        out,
                        "{}: display or account changed; remove it and reload to apply",
                        cfg.name
                    );
                } else {
                    gw.remove_interface(cfg.id);
                    gw.add_interface(cfg.clone());
                    let _ = writeln!(out, "{}: settings applied", cfg.name);
                }
            }
        }
    }
    for entry in gw.interfaces.iter() {
        if !fresh.interfaces.iter().any(|c| c.id == *entry.key()) {
            let _ = writeln!(
                out,
                "{}: no longer in the file (use sk remove to stop it)",
                entry.cfg.name
            );
        }
    }
    out.push_str("sk reload success\n");
    out
}

/// `sk remove <skype_user>|#<id>|#<name> [force]`.
async fn remove(gw: &Gateway, target: &str, force: bool) -> String {
    let found = match target.strip_prefix('#') {
        Some(key) => match key.parse::<u32>() {
            Ok(id) => gw.registry.get(id),
            Err(_) => gw.registry.by_name(key),
        },
        None => gw.registry.by_user(target).into_iter().next(),
    };
    let Some(slot) = found else {
        return format!("sk remove '{target}' failed\n");
    };
    let busy = !matches!(
        slot.state,
        IfaceState::Idle | IfaceState::Down | IfaceState::Dead
    );
    if busy && !force {
        return format!(
            "interface {} is busy ({}); add force to remove it anyway\nsk remove '{target}' failed\n",
            slot.name,
            slot.state.label()
        );
    }
    gw.remove_interface(slot.id);
    if let Some(supervisor) = gw.supervisor.get() {
        if let Err(e) = supervisor.stop(&slot.name).await {
            info!(interface = %slot.name, error = %e, "no supervised client to stop");
        }
    }
    info!(interface = %slot.name, force, "interface removed");
    format!("sk remove '{target}' success\n")
}

/// Commands arriving as `CUSTOM skypopen::command` events on the inbound connection; the
/// output goes back as `CUSTOM skypopen::command_result` with the request's `Job-UUID`.
async fn serve_events(gw: Gateway, table: Arc<CommandTable>) {
    let mut requests = gw.switch.command_requests();
    // One console choice for everything arriving this way.
    let context = SessionContext::new(0, std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
    while let Some(request) = requests.next(&gw.cancel, "sk commands").await {
        let SwitchRequest::Command(CommandRequest { line, job }) = request else {
            continue;
        };
        info!(command = %line, job = job.as_deref().unwrap_or(""), "command from FreeSWITCH");
        let output = table.execute(&line, context.clone(), true).await;
        let mut headers = vec![
            ("Event-Subclass", "skypopen::command_result"),
            ("command", line.as_str()),
        ];
        if let Some(job) = job.as_deref() {
            headers.push(("Job-UUID", job));
        }
        if let Err(e) = gw.switch.fire("CUSTOM", &headers, &output).await {
            warn!(error = %e, "cannot return a command result to FreeSWITCH");
        }
    }
}
