//! The `socket` application of the double: connects to the sidecar's acceptor for a channel and
//! obeys the commands of an outbound Event Socket session (spec A3).

use super::core::{bind_socket, Deferred, Out, SentMsg, State, UnicastRequest};
use super::replay::read_command;
use super::wire::{self, Command, Event, Format};
use super::Core;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

pub async fn run_socket(
    core: Arc<Core>,
    uuid: String,
    addr: SocketAddr,
    full: bool,
    is_async: bool,
    after_connect: Option<Event>,
) {
    match serve_socket(
        core.clone(),
        uuid.clone(),
        addr,
        full,
        is_async,
        after_connect,
    )
    .await
    {
        // `socket` returns, the dialplan has nothing more: the call ends.
        SocketEnd::ConnectFailed => {
            core.with(|st| st.hangup(&uuid, "NORMAL_TEMPORARY_FAILURE", false));
        }
        // The session is over: the park ends and, with no more dialplan, the call with it.
        SocketEnd::Closed => core.with(|st| st.hangup(&uuid, "NORMAL_CLEARING", false)),
    }
}

/// How one `socket` action ended; what the dialplan does next is the caller's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketEnd {
    ConnectFailed,
    Closed,
}

/// One `socket` action: connect, obey the session's commands until it closes. The channel is
/// left as it is (up or not).
pub async fn serve_socket(
    core: Arc<Core>,
    uuid: String,
    addr: SocketAddr,
    full: bool,
    is_async: bool,
    after_connect: Option<Event>,
) -> SocketEnd {
    let stream = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(_) => {
            if let Some(job) = after_connect {
                core.with(|st| st.fire(job));
            }
            return SocketEnd::ConnectFailed;
        }
    };
    let _ = stream.set_nodelay(true);
    let (mut read, write) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(write_loop(write, rx));
    let sub = core.with(|st| {
        let id = st.add_subscriber(tx);
        bind_socket(st, &uuid, id, full, is_async);
        id
    });
    let mut after_connect = after_connect;
    let mut buf = Vec::new();
    loop {
        let raw = match read_command(&mut read, &mut buf).await {
            Ok(Some(raw)) => raw,
            _ => break,
        };
        let command = Command::parse(&raw);
        let done =
            core.with(|st| socket_command(st, &uuid, sub, full, &command, &mut after_connect));
        if done {
            break;
        }
    }
    core.with(|st| {
        if st.subs.contains_key(&sub) {
            if let Some(s) = st.subs.get(&sub) {
                let _ = s.tx.send(Out::Close);
            }
            st.remove_subscriber(sub);
        }
        if let Some(c) = st.channels.get_mut(&uuid) {
            if let Some(b) = c.socket.as_mut() {
                b.connected = false;
            }
        }
    });
    SocketEnd::Closed
}

/// Handles one command of the controlled session; true when the session ends.
fn socket_command(
    st: &mut State,
    uuid: &str,
    sub: u64,
    full: bool,
    command: &Command,
    after_connect: &mut Option<Event>,
) -> bool {
    st.recorded.commands.push(command.line.clone());
    let word = command.word();
    let gated = matches!(
        word.as_str(),
        "linger"
            | "nolinger"
            | "event"
            | "nixevent"
            | "noevents"
            | "api"
            | "bgapi"
            | "sendevent"
            | "log"
            | "nolog"
    );
    st.begin_command(sub);
    if gated && !full {
        st.end_command(sub, wire::command_reply("-ERR command not found"));
        return false;
    }
    let mut close = false;
    let reply = match word.as_str() {
        "connect" => st
            .channel_data(uuid)
            .unwrap_or_else(|| wire::command_reply("-ERR command not found")),
        "myevents" => {
            if let Some(s) = st.subs.get_mut(&sub) {
                if command.rest().to_ascii_lowercase().contains("json") {
                    s.format = Format::Json;
                }
                s.myevents(uuid);
            }
            wire::command_reply("+OK Events Enabled")
        }
        "linger" => {
            let secs = command.rest().parse::<u64>().ok();
            if let Some(b) = st.channels.get_mut(uuid).and_then(|c| c.socket.as_mut()) {
                b.linger = Some(secs);
            }
            match secs {
                Some(s) => wire::command_reply(&format!("+OK will linger {s} seconds")),
                None => wire::command_reply("+OK will linger"),
            }
        }
        "nolinger" => {
            if let Some(b) = st.channels.get_mut(uuid).and_then(|c| c.socket.as_mut()) {
                b.linger = None;
            }
            wire::command_reply("+OK will not linger")
        }
        "event" => event_command(st, sub, command),
        "filter" => filter_command(st, sub, command),
        "sendmsg" => {
            let target = match command.rest() {
                "" => uuid.to_string(),
                other => other.to_string(),
            };
            sendmsg(st, &target, command)
        }
        "api" => super::inbound::api_command(st, command),
        "bgapi" => super::inbound::bgapi_command(st, command, Some(uuid)),
        "getvar" => {
            let value = st
                .channels
                .get(uuid)
                .and_then(|c| c.variable(command.rest()))
                .filter(|v| !v.is_empty())
                .map(str::to_string);
            wire::command_reply(value.as_deref().unwrap_or("-ERR command not found"))
        }
        "resume" => {
            // As mod_event_socket: the flag, and the variable that outlives the session.
            if let Some(c) = st.channels.get_mut(uuid) {
                c.set_variable("socket_resume", "true");
            }
            wire::command_reply("+OK")
        }
        "divert_events" => wire::command_reply("+OK events diverted"),
        "sendevent" => super::inbound::sendevent(st, command),
        "exit" | "..." => {
            close = true;
            wire::command_reply("+OK bye")
        }
        _ => wire::command_reply("-ERR command not found"),
    };
    st.end_command(sub, reply);
    if word == "connect" {
        if let Some(job) = after_connect.take() {
            st.fire(job);
        }
    }
    if close {
        if let Some(c) = st.channels.get_mut(uuid) {
            if let Some(b) = c.socket.as_mut() {
                b.linger = None;
            }
        }
        st.close_socket(sub, uuid);
    }
    close
}

pub fn event_command(st: &mut State, sub: u64, command: &Command) -> Vec<u8> {
    let rest = command.rest().to_string();
    let mut words: Vec<&str> = rest.split(' ').filter(|w| !w.is_empty()).collect();
    let Some(s) = st.subs.get_mut(&sub) else {
        return wire::command_reply("-ERR command not found");
    };
    let format = match words.first().map(|w| w.to_ascii_lowercase()) {
        Some(f) if f == "plain" || f == "json" || f == "xml" => {
            words.remove(0);
            f
        }
        _ => "plain".to_string(),
    };
    s.format = if format == "json" {
        Format::Json
    } else {
        Format::Plain
    };
    if s.subscribe(&words) {
        wire::command_reply(&format!("+OK event listener enabled {format}"))
    } else {
        wire::command_reply("-ERR no keywords supplied")
    }
}

pub fn filter_command(st: &mut State, sub: u64, command: &Command) -> Vec<u8> {
    let rest = command.rest().to_string();
    let mut words = rest.splitn(3, ' ');
    let Some(s) = st.subs.get_mut(&sub) else {
        return wire::command_reply("-ERR invalid syntax");
    };
    match (words.next(), words.next(), words.next()) {
        (Some("delete"), Some("all"), None) => {
            s.filters.clear();
            wire::command_reply("+OK filter deleted. [all][]")
        }
        (Some("delete"), Some(header), value) => {
            s.filters
                .retain(|(h, v)| !(h.eq_ignore_ascii_case(header) && value.is_none_or(|x| x == v)));
            wire::command_reply(&format!(
                "+OK filter deleted. [{header}][{}]",
                value.unwrap_or("")
            ))
        }
        (Some("add"), Some(header), Some(value)) | (Some(header), Some(value), None) => {
            s.filters.push((header.to_string(), value.to_string()));
            wire::command_reply(&format!("+OK filter added. [{header}]=[{value}]"))
        }
        _ => wire::command_reply("-ERR invalid syntax"),
    }
}

fn sendmsg(st: &mut State, uuid: &str, command: &Command) -> Vec<u8> {
    st.recorded.sendmsgs.push(SentMsg {
        uuid: uuid.to_string(),
        headers: command.headers.clone(),
        body: command.body.clone(),
    });
    if !st.channels.get(uuid).is_some_and(|c| c.is_up()) {
        return wire::command_reply(&format!("-ERR invalid session id [{uuid}]"));
    }
    let call_command = command
        .header("call-command")
        .unwrap_or("")
        .to_ascii_lowercase();
    match call_command.as_str() {
        "execute" => {
            let app = command.header("execute-app-name").unwrap_or("").to_string();
            let arg = command
                .header("execute-app-arg")
                .map(str::to_string)
                .or_else(|| command.body.clone())
                .unwrap_or_default();
            let app_uuid = command
                .header("event-uuid")
                .map(str::to_string)
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            execute(st, uuid, &app, &arg, &app_uuid);
            wire::command_reply("+OK")
        }
        "hangup" => {
            let cause = command
                .header("hangup-cause")
                .unwrap_or("NORMAL_CLEARING")
                .to_string();
            st.hangup(uuid, &cause, true);
            wire::command_reply("+OK")
        }
        "unicast" => {
            let get =
                |name: &str, default: &str| command.header(name).unwrap_or(default).to_string();
            let request = UnicastRequest {
                uuid: uuid.to_string(),
                local_ip: get("local-ip", "127.0.0.1"),
                local_port: get("local-port", "8025").parse().unwrap_or(8025),
                remote_ip: get("remote-ip", "127.0.0.1"),
                remote_port: get("remote-port", "8026").parse().unwrap_or(8026),
                transport: get("transport", "udp"),
                native: command
                    .header("flags")
                    .is_some_and(|f| f.to_ascii_lowercase().contains("native")),
            };
            let _ = st.deferred.send(Deferred::Unicast(request));
            wire::command_reply("+OK")
        }
        _ => wire::command_reply("+OK"),
    }
}

fn execute(st: &mut State, uuid: &str, app: &str, arg: &str, app_uuid: &str) {
    if let Some(c) = st.channels.get_mut(uuid) {
        c.executed.push((app.to_string(), arg.to_string()));
    }
    let mut started = vec![("Application".to_string(), app.to_string())];
    if !arg.is_empty() {
        started.push(("Application-Data".into(), arg.to_string()));
    }
    started.push(("Application-UUID".into(), app_uuid.to_string()));
    let origin = ("switch_core_session.c", "switch_core_session_exec", 2944);
    st.channel_event(uuid, "CHANNEL_EXECUTE", origin, true, started);
    match app {
        "answer" => st.answer(uuid),
        "ring_ready" => st.progress(uuid, false),
        "pre_answer" => st.progress(uuid, true),
        "hangup" => {
            let cause = if arg.is_empty() {
                "NORMAL_CLEARING"
            } else {
                arg
            };
            st.hangup(uuid, cause, true);
        }
        "set" | "export" => {
            if let Some((k, v)) = arg.split_once('=') {
                if let Some(c) = st.channels.get_mut(uuid) {
                    c.set_variable(k, v);
                }
            }
        }
        "unset" => {
            if let Some(c) = st.channels.get_mut(uuid) {
                c.unset_variable(arg);
            }
        }
        _ => {}
    }
    let mut complete = vec![("Application".to_string(), app.to_string())];
    if !arg.is_empty() {
        complete.push(("Application-Data".into(), arg.to_string()));
    }
    complete.push(("Application-Response".into(), "_none_".into()));
    complete.push(("Application-UUID".into(), app_uuid.to_string()));
    let origin = ("switch_core_session.c", "switch_core_session_exec", 2967);
    st.channel_event(uuid, "CHANNEL_EXECUTE_COMPLETE", origin, true, complete);
}

/// Writes what the state queued for one connection, in order, until told to close.
pub async fn write_loop(
    mut write: tokio::net::tcp::OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Out>,
) {
    while let Some(out) = rx.recv().await {
        match out {
            Out::Bytes(bytes) => {
                if write.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            Out::Close => break,
        }
    }
    let _ = write.shutdown().await;
}
