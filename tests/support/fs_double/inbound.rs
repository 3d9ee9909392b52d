//! The double's inbound Event Socket server (port 8021 on a real switch): `auth`, `api`,
//! `bgapi`, `event`, `filter`, `sendevent`, `exit` with FreeSWITCH's replies (spec A2).

use super::core::{Out, State};
use super::replay::read_command;
use super::socket::{event_command, filter_command, write_loop};
use super::wire::{self, Command, Event};
use super::Core;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub async fn serve(core: Arc<Core>, listener: TcpListener, cancel: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        if let Ok((stream, _)) = accepted {
            // As mod_event_socket does; without it a reply and the event right after it wait
            // for the peer's delayed ACK.
            let _ = stream.set_nodelay(true);
            tokio::spawn(connection(core.clone(), stream, cancel.clone()));
        }
    }
}

async fn connection(core: Arc<Core>, stream: TcpStream, cancel: CancellationToken) {
    let (mut read, write) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    let _ = tx.send(Out::Bytes(b"Content-Type: auth/request\n\n".to_vec()));
    tokio::spawn(write_loop(write, rx));
    let sub = core.with(|st| {
        let id = st.add_subscriber(tx);
        st.inbound.insert(id);
        id
    });
    let mut authed = false;
    let mut buf = Vec::new();
    loop {
        let raw = tokio::select! {
            _ = cancel.cancelled() => break,
            raw = read_command(&mut read, &mut buf) => raw,
        };
        let Ok(Some(raw)) = raw else { break };
        let command = Command::parse(&raw);
        let keep = core.with(|st| {
            if !st.subs.contains_key(&sub) {
                return false;
            }
            inbound_command(st, sub, &command, &mut authed, &core.password)
        });
        if !keep {
            break;
        }
    }
    core.with(|st| {
        if let Some(s) = st.subs.get(&sub) {
            let _ = s.tx.send(Out::Close);
        }
        st.remove_subscriber(sub);
        st.inbound.remove(&sub);
    });
}

/// One command of an inbound session; false when the connection is to end.
fn inbound_command(
    st: &mut State,
    sub: u64,
    command: &Command,
    authed: &mut bool,
    password: &str,
) -> bool {
    st.recorded.commands.push(command.line.clone());
    let word = command.word();
    if word == "exit" || word == "..." {
        st.begin_command(sub);
        st.end_command(sub, wire::command_reply("+OK bye"));
        close(st, sub, true);
        return false;
    }
    if !*authed {
        st.begin_command(sub);
        if word == "auth" {
            if command.rest() == password {
                *authed = true;
                st.end_command(sub, wire::command_reply("+OK accepted"));
                return true;
            }
            st.end_command(sub, wire::command_reply("-ERR invalid"));
            close(st, sub, true);
            return false;
        }
        st.end_command(sub, wire::command_reply("-ERR command not found"));
        return true;
    }
    if word == "sendevent" {
        let name = command.rest().split(' ').next().unwrap_or("");
        if st
            .dropping_events
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
        {
            st.recorded.dropped_events += 1;
            close(st, sub, false);
            return false;
        }
    }
    if word == "api" {
        if let Some(prefix) = st.drop_on_api.clone() {
            if command.rest().starts_with(&prefix) {
                st.drop_on_api = None;
                st.recorded.api.push(command.rest().to_string());
                close(st, sub, false);
                return false;
            }
        }
    }
    st.begin_command(sub);
    let reply = match word.as_str() {
        "api" => api_command(st, command),
        "bgapi" => bgapi_command(st, command, None),
        "event" => event_command(st, sub, command),
        "filter" => filter_command(st, sub, command),
        "noevents" => {
            if let Some(s) = st.subs.get_mut(&sub) {
                s.all = false;
                s.names.clear();
                s.customs.clear();
            }
            wire::command_reply("+OK no longer listening for events")
        }
        "nixevent" => {
            let rest = command.rest().to_string();
            if let Some(s) = st.subs.get_mut(&sub) {
                for w in rest.split(' ') {
                    s.names.remove(&w.to_ascii_uppercase());
                    s.customs.remove(w);
                }
            }
            wire::command_reply("+OK events nixed")
        }
        "sendevent" => sendevent(st, command),
        "myevents" => {
            let rest = command.rest().to_string();
            match (rest.split(' ').next(), st.subs.get_mut(&sub)) {
                (Some(uuid), Some(s)) if !uuid.is_empty() => {
                    s.myevents(uuid);
                    wire::command_reply("+OK Events Enabled")
                }
                _ => wire::command_reply("-ERR invalid uuid"),
            }
        }
        "log" => wire::command_reply(&format!("+OK log level {} [7]", command.rest())),
        "nolog" => wire::command_reply("+OK no longer logging"),
        "linger" | "nolinger" => wire::command_reply("-ERR not controlling a session"),
        _ => wire::command_reply("-ERR command not found"),
    };
    st.end_command(sub, reply);
    true
}

fn close(st: &mut State, sub: u64, with_notice: bool) {
    if let Some(s) = st.subs.get_mut(&sub) {
        if with_notice {
            s.send(wire::disconnect_notice());
        }
        let _ = s.tx.send(Out::Close);
    }
    st.remove_subscriber(sub);
    st.inbound.remove(&sub);
}

/// Runs `bgapi <line>` and fires its BACKGROUND_JOB (after the reply, which the caller sends).
/// An originate that runs `&socket(...)` reports only once the socket connected (Q12).
/// `api <command>`, recorded, answered at once.
pub fn api_command(st: &mut State, command: &Command) -> Vec<u8> {
    st.recorded.api.push(command.rest().to_string());
    let body = st.api(command.rest());
    wire::api_response(&body)
}

/// `bgapi <command>`, recorded; the reply names the job whose BACKGROUND_JOB follows.
/// `owner` is the channel of the `socket` connection that sent it, if any.
pub fn bgapi_command(st: &mut State, command: &Command, owner: Option<&str>) -> Vec<u8> {
    let job = command
        .header("Job-UUID")
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    st.recorded.api.push(command.rest().to_string());
    run_bgapi(st, command.rest(), &job, owner);
    wire::command_reply_with(&format!("+OK Job-UUID: {job}"), &[("Job-UUID", &job)])
}

pub fn run_bgapi(st: &mut State, line: &str, job: &str, owner: Option<&str>) {
    let (cmd, args) = line.split_once(' ').unwrap_or((line, ""));
    let mut headers = st.standard("BACKGROUND_JOB", "mod_event_socket.c", "api_exec", 1572);
    headers.push(("Job-UUID".into(), job.to_string()));
    if let Some(owner) = owner {
        headers.push(("Job-Owner-UUID".into(), owner.to_string()));
    }
    headers.push(("Job-Command".into(), cmd.to_string()));
    if !args.is_empty() {
        headers.push(("Job-Command-Arg".into(), args.to_string()));
    }
    let event = Event {
        headers,
        body: None,
    };
    if cmd == "originate" {
        st.originate(args, Some(event));
    } else {
        let mut event = event;
        event.body = Some(st.api(line));
        st.fire(event);
    }
}

/// `sendevent <NAME>` + headers + body: fired with the sender's headers in front (Q3), the
/// body untouched, and `+OK <Event-UUID>` as the reply.
pub fn sendevent(st: &mut State, command: &Command) -> Vec<u8> {
    let name = command.rest().split(' ').next().unwrap_or("").to_string();
    if name.is_empty() {
        return wire::command_reply("-ERR invalid event");
    }
    let event_uuid = uuid::Uuid::new_v4().to_string();
    let mut headers = Vec::new();
    if name.eq_ignore_ascii_case("CUSTOM") {
        if let Some(subclass) = command.header("Event-Subclass") {
            headers.push(("Event-Subclass".to_string(), subclass.to_string()));
        }
    }
    headers.push(("Command".to_string(), command.line.clone()));
    for (k, v) in &command.headers {
        if k.eq_ignore_ascii_case("Event-Name") || k.eq_ignore_ascii_case("Event-Subclass") {
            continue;
        }
        headers.push((k.clone(), v.clone()));
    }
    headers.push(("Event-UUID".to_string(), event_uuid.clone()));
    headers.extend(st.standard(
        &name.to_ascii_uppercase(),
        "mod_event_socket.c",
        "parse_command",
        2275,
    ));
    let event = Event {
        headers,
        body: command.body.clone(),
    };
    st.recorded.sent_events.push(event.clone());
    st.fire(event);
    wire::command_reply(&format!("+OK {event_uuid}"))
}
