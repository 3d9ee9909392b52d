//! One listener connection: greeting, `auth`, then commands answered strictly in order,
//! with subscribed events and log lines written between replies.

use super::bus::Published;
use super::commands::SessionContext;
use super::subscription::{Filters, Subscription};
use super::writer::{Offer, Writer};
use super::Shared;
use crate::switch::esl::names::{canonical_event_name, CUSTOM};
use crate::switch::esl::reply::{self, LogData};
use crate::switch::esl::{Command, CommandDecoder, Event, FrameError};
use crate::telemetry::LogLine;
use bytes::Bytes;
use futures_util::StreamExt;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use subtle::ConstantTimeEq;
use tokio::net::TcpStream;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, Semaphore};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// What happens to the connection after a command or a background input.
enum Flow {
    Continue,
    /// Write what is queued, then a disconnect notice with this body, then close.
    Close(&'static str),
    /// Drop what is queued and close with this notice (the client fell behind).
    Kill(&'static str),
    /// Close without a notice (the client is gone).
    Drop,
}

/// Inputs other than the client's commands.
enum Background {
    Cancelled,
    WriterGone,
    Event(Result<Arc<Published>, RecvError>),
    Log(Result<LogLine, RecvError>),
}

struct Session {
    shared: Arc<Shared>,
    context: SessionContext,
    writer: Writer,
    authenticated: bool,
    subscription: Subscription,
    filters: Filters,
    events: Option<broadcast::Receiver<Arc<Published>>>,
    logs: Option<(broadcast::Receiver<LogLine>, u8)>,
    jobs: Arc<Semaphore>,
    cancel: CancellationToken,
}

/// Told to a connection that did not log in within the auth timeout.
const NO_AUTH_IN_TIME: &str = "No auth in time: closing. Log in with `auth <password>` first.\n";
/// Told to a connection whose command could not be read (over a size limit, or malformed).
const UNREADABLE: &str =
    "Closed: a command was over the size limits (64 KiB of headers, 1 MiB of body) or unreadable.\n";
/// Told to a connection closed to make room for a newer one waiting to log in.
const EVICTED: &str =
    "Closed: too many connections waiting to log in; the oldest make room for new ones.\n";

pub(crate) async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    evicted: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let config = &shared.config;
    let writer = Writer::spawn(write, config.queue_capacity, config.write_timeout);
    let mut frames = FramedRead::new(read, CommandDecoder::new(config.limits));
    let auth_deadline = tokio::time::sleep(config.auth_timeout);
    tokio::pin!(auth_deadline);
    let mut session = Session {
        context: SessionContext::new(id, peer),
        jobs: Arc::new(Semaphore::new(config.max_background_jobs)),
        shared: shared.clone(),
        writer,
        authenticated: false,
        subscription: Subscription::default(),
        filters: Filters::default(),
        events: None,
        logs: None,
        cancel,
    };
    info!("connection opened");
    let flow = if session.writer.send(reply::AUTH_REQUEST).await.is_err() {
        Flow::Drop
    } else {
        loop {
            let authenticated = session.authenticated;
            let flow = tokio::select! {
                frame = frames.next() => match frame {
                    Some(Ok(command)) => session.handle(command).await,
                    Some(Err(err)) => session.protocol_error(err),
                    None => Flow::Drop,
                },
                _ = &mut auth_deadline, if !authenticated => {
                    info!("no auth in time, closing");
                    Flow::Close(NO_AUTH_IN_TIME)
                }
                _ = evicted.cancelled(), if !authenticated => {
                    info!("closed to make room for a newer connection waiting to log in");
                    Flow::Close(EVICTED)
                }
                input = session.next_background() => session.on_background(input),
            };
            match flow {
                Flow::Continue => continue,
                other => break other,
            }
        }
    };
    let Session { writer, .. } = session;
    match flow {
        Flow::Close(body) => {
            writer
                .finish(Some(Bytes::from(reply::disconnect_notice(body))))
                .await
        }
        Flow::Kill(body) => {
            writer
                .abort(Some(Bytes::from(reply::disconnect_notice(body))))
                .await
        }
        Flow::Drop | Flow::Continue => writer.finish(None).await,
    }
    info!("connection closed");
}

async fn recv_opt<T: Clone>(receiver: &mut Option<broadcast::Receiver<T>>) -> Result<T, RecvError> {
    match receiver {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

impl Session {
    async fn next_background(&mut self) -> Background {
        let logs = &mut self.logs;
        tokio::select! {
            _ = self.cancel.cancelled() => Background::Cancelled,
            _ = self.writer.gone() => Background::WriterGone,
            event = recv_opt(&mut self.events) => Background::Event(event),
            line = async {
                match logs {
                    Some((receiver, _)) => receiver.recv().await,
                    None => std::future::pending().await,
                }
            } => Background::Log(line),
        }
    }

    fn on_background(&mut self, input: Background) -> Flow {
        match input {
            Background::Cancelled => Flow::Close(reply::SHUTTING_DOWN),
            Background::WriterGone => {
                info!("client stopped reading, closing");
                Flow::Drop
            }
            Background::Event(Ok(published)) => self.deliver_event(&published),
            Background::Event(Err(RecvError::Lagged(_))) => self.lost_events(),
            Background::Event(Err(RecvError::Closed)) => {
                self.events = None;
                Flow::Continue
            }
            Background::Log(Ok(line)) => self.deliver_log(&line),
            Background::Log(Err(RecvError::Lagged(_))) => {
                warn!("client fell behind on log lines, closing");
                Flow::Kill(reply::LOST_LOG_LINES)
            }
            Background::Log(Err(RecvError::Closed)) => {
                self.logs = None;
                Flow::Continue
            }
        }
    }

    fn deliver_event(&mut self, published: &Published) -> Flow {
        let event = published.event();
        if !self.subscription.wants(event) || !self.filters.pass(event) {
            return Flow::Continue;
        }
        match self
            .writer
            .offer(published.rendered(self.subscription.format()))
        {
            Offer::Queued => Flow::Continue,
            Offer::Full => self.lost_events(),
            Offer::Closed => Flow::Drop,
        }
    }

    fn lost_events(&mut self) -> Flow {
        self.shared
            .stats
            .lost_event_kills
            .fetch_add(1, Ordering::Relaxed);
        warn!("client fell behind on events, closing");
        Flow::Kill(reply::LOST_EVENTS)
    }

    fn deliver_log(&mut self, line: &LogLine) -> Flow {
        let Some((_, max_level)) = &self.logs else {
            return Flow::Continue;
        };
        let level = freeswitch_level(line.level);
        if level > *max_level {
            return Flow::Continue;
        }
        let text = format!(
            "{} [{}] {} {}\n",
            log_timestamp(),
            level_name(level),
            line.target,
            line.text
        );
        let bytes = reply::log_data(&LogData {
            level,
            text_channel: 0,
            file: &line.target,
            function: "",
            line: 0,
            user_data: "",
            text: &text,
        });
        match self.writer.offer(Bytes::from(bytes)) {
            Offer::Queued => Flow::Continue,
            Offer::Full => Flow::Kill(reply::LOST_LOG_LINES),
            Offer::Closed => Flow::Drop,
        }
    }

    fn protocol_error(&mut self, err: FrameError) -> Flow {
        warn!(error = %err, "unreadable command, closing");
        Flow::Close(UNREADABLE)
    }

    async fn reply(&mut self, text: &str) -> Flow {
        match self.writer.send(reply::command_reply(text)).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Drop,
        }
    }

    async fn handle(&mut self, command: Command) -> Flow {
        let keyword = command.keyword().to_ascii_lowercase();
        // Never log the arguments: `auth` carries the password.
        debug!(command = %keyword, "command");
        if keyword == "exit" || command.line.starts_with("...") {
            return match self.reply("+OK bye").await {
                Flow::Continue => Flow::Close(reply::GOODBYE),
                other => other,
            };
        }
        if !self.authenticated {
            return self.handle_unauthenticated(&keyword, &command).await;
        }
        match keyword.as_str() {
            "api" => self.api(&command).await,
            "bgapi" => self.bgapi(&command).await,
            "event" | "events" => {
                let text = self.subscription.subscribe(command.args());
                self.sync_event_receiver();
                self.reply(&text).await
            }
            "nixevent" => {
                let text = self.subscription.unsubscribe(command.args());
                self.sync_event_receiver();
                self.reply(&text).await
            }
            "noevents" => {
                let text = self.subscription.clear();
                self.sync_event_receiver();
                self.reply(&text).await
            }
            "filter" => {
                let text = self.filters.command(command.args());
                self.reply(&text).await
            }
            "log" => self.log(command.args()).await,
            "nolog" => {
                let text = if self.logs.take().is_some() {
                    "+OK no longer logging"
                } else {
                    "-ERR not loging"
                };
                self.reply(text).await
            }
            "sendevent" => self.sendevent(&command).await,
            "sendmsg" => {
                let uuid = match command.args() {
                    "" => command.headers.get("session-id").unwrap_or(""),
                    uuid => uuid,
                };
                let text = format!("-ERR invalid session id [{uuid}]");
                self.reply(&text).await
            }
            "linger" | "nolinger" => self.reply("-ERR not controlling a session").await,
            _ => self.reply("-ERR command not found").await,
        }
    }

    async fn handle_unauthenticated(&mut self, keyword: &str, command: &Command) -> Flow {
        if keyword != "auth" && keyword != "userauth" {
            return self.reply("-ERR command not found").await;
        }
        let ip = self.context.peer().ip().to_canonical();
        let offered = command.line.get(keyword.len() + 1..).unwrap_or("");
        let expected = self.shared.config.password.expose();
        let accepted =
            keyword == "auth" && bool::from(offered.as_bytes().ct_eq(expected.as_bytes()));
        if accepted {
            self.authenticated = true;
            self.shared.admission.leave(self.context.id());
            self.shared.guard.record_success(ip);
            info!("authenticated");
            return self.reply("+OK accepted").await;
        }
        self.shared
            .stats
            .auth_failures
            .fetch_add(1, Ordering::Relaxed);
        let failure = self.shared.guard.record_failure(ip);
        // One line per failure, in a fixed shape a fail2ban filter matches
        // (contrib/fail2ban/filter.d/skypopen.conf).
        warn!(address = %ip, banned = failure.banned, "listener authentication failure");
        tokio::time::sleep(failure.pause).await;
        match self.reply("-ERR invalid").await {
            Flow::Continue => Flow::Close(reply::GOODBYE),
            other => other,
        }
    }

    /// Subscribes to the bus while the connection listens for events, and only then, so a
    /// connection that never asked for events never falls behind on them.
    fn sync_event_receiver(&mut self) {
        if !self.subscription.is_listening() {
            self.events = None;
        } else if self.events.is_none() {
            self.events = Some(self.shared.events.subscribe());
        }
    }

    fn fire_api_event(&self, line: &str) {
        let (command, args) = super::commands::split_command(line);
        let mut event = self.shared.events.source().event("API", "api_exec");
        event.push_header("API-Command", command);
        if !args.is_empty() {
            event.push_header("API-Command-Argument", args);
        }
        self.shared.events.publish(event);
    }

    async fn api(&mut self, command: &Command) -> Flow {
        let line = command.args().to_string();
        self.fire_api_event(&line);
        let call = self
            .shared
            .table
            .execute(&line, self.context.clone(), false);
        tokio::pin!(call);
        // Keep draining events while the command runs, so a slow command cannot make this
        // connection fall behind on the bus.
        let output = loop {
            tokio::select! {
                output = &mut call => break output,
                input = self.next_background() => match self.on_background(input) {
                    Flow::Continue => {}
                    other => return other,
                },
            }
        };
        match self.writer.send(reply::api_response(&output)).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Drop,
        }
    }

    async fn bgapi(&mut self, command: &Command) -> Flow {
        let line = command.args().to_string();
        let job_uuid = command
            .headers
            .get("Job-UUID")
            .map(str::trim)
            .filter(|uuid| !uuid.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let Ok(permit) = self.jobs.clone().try_acquire_owned() else {
            return self.reply("-ERR too many background jobs").await;
        };
        self.fire_api_event(&line);
        let text = format!("+OK Job-UUID: {job_uuid}");
        let sent = self
            .writer
            .send(reply::command_reply_with(&text, &[("Job-UUID", &job_uuid)]))
            .await;
        if sent.is_err() {
            return Flow::Drop;
        }
        let shared = self.shared.clone();
        let context = self.context.clone();
        let cancel = self.cancel.clone();
        self.shared.jobs.spawn(async move {
            let _permit = permit;
            let call = shared.table.execute(&line, context, true);
            let output = tokio::select! {
                output = call => output,
                _ = cancel.cancelled() => return,
            };
            let (job_command, job_args) = super::commands::split_command(&line);
            let mut event = shared.events.source().event("BACKGROUND_JOB", "api_exec");
            event.push_header("Job-UUID", job_uuid);
            event.push_header("Job-Command", job_command);
            if !job_args.is_empty() {
                event.push_header("Job-Command-Arg", job_args);
            }
            event.set_body(if output.is_empty() {
                reply::NO_REPLY.to_string()
            } else {
                output
            });
            shared.events.publish(event);
        });
        Flow::Continue
    }

    async fn log(&mut self, args: &str) -> Flow {
        let Some(level) = parse_log_level(args) else {
            return self.reply("-ERR invalid log level").await;
        };
        match &mut self.logs {
            Some((_, current)) => *current = level,
            None => self.logs = Some((self.shared.logs.subscribe(), level)),
        }
        let text = format!("+OK log level {args} [{level}]");
        self.reply(&text).await
    }

    /// Fires the event as FreeSWITCH does: the sender's headers first (a CUSTOM event's
    /// `Event-Subclass` at the very top), `Event-UUID`, then the standard headers.
    async fn sendevent(&mut self, command: &Command) -> Flow {
        let Some(name) = canonical_event_name(command.args()) else {
            return self.reply("-ERR invalid event name").await;
        };
        let mut event = Event::new();
        let subclass = (name == CUSTOM)
            .then(|| command.headers.get("Event-Subclass"))
            .flatten();
        if let Some(subclass) = subclass {
            event.push_header("Event-Subclass", subclass);
        }
        event.push_header("Command", command.line.as_str());
        for (header, value) in command.headers.iter() {
            if subclass.is_some() && header.eq_ignore_ascii_case("Event-Subclass") {
                continue;
            }
            event.push_header(header, value);
        }
        let event_uuid = uuid::Uuid::new_v4().to_string();
        event.push_header("Event-UUID", event_uuid.as_str());
        self.shared
            .events
            .source()
            .stamp(&mut event, name, "parse_command");
        if let Some(body) = &command.body {
            event.set_body(String::from_utf8_lossy(body));
        }
        self.shared.events.publish(event);
        let text = format!("+OK {event_uuid}");
        self.reply(&text).await
    }
}

/// `log <level>`: a name or a number (clamped to 0-7); nothing means debug.
pub(crate) fn parse_log_level(arg: &str) -> Option<u8> {
    let arg = arg.trim();
    if arg.is_empty() {
        return Some(7);
    }
    if let Ok(number) = arg.parse::<i64>() {
        // Lossless: clamped to 0..=7.
        return Some(number.clamp(0, 7) as u8);
    }
    Some(match arg.to_ascii_lowercase().as_str() {
        "console" => 0,
        "alert" => 1,
        "crit" => 2,
        "err" | "error" => 3,
        "warning" | "warn" => 4,
        "notice" => 5,
        "info" => 6,
        "debug" => 7,
        _ => return None,
    })
}

fn freeswitch_level(level: tracing::Level) -> u8 {
    match level {
        tracing::Level::ERROR => 3,
        tracing::Level::WARN => 4,
        tracing::Level::INFO => 6,
        tracing::Level::DEBUG | tracing::Level::TRACE => 7,
    }
}

fn level_name(level: u8) -> &'static str {
    match level {
        0 => "CONSOLE",
        1 => "ALERT",
        2 => "CRIT",
        3 => "ERR",
        4 => "WARNING",
        5 => "NOTICE",
        6 => "INFO",
        _ => "DEBUG",
    }
}

fn log_timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{}.{:06}",
        crate::switch::esl::stamp::format_local(now),
        now.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels_as_freeswitch_reads_them() {
        assert_eq!(parse_log_level(""), Some(7));
        assert_eq!(parse_log_level("info"), Some(6));
        assert_eq!(parse_log_level("WARNING"), Some(4));
        assert_eq!(parse_log_level("-3"), Some(0));
        assert_eq!(parse_log_level("99"), Some(7));
        assert_eq!(parse_log_level("loud"), None);
    }
}
