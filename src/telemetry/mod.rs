//! Logging for operators tailing the log: human text or JSON lines, an `EnvFilter` level per
//! module, and a tap that streams the same records to listener connections that asked for
//! them with `log <level>` (as FreeSWITCH's `log/data`).

mod host_tag;

use crate::config::{LogFormat, LogSettings};
use host_tag::{HostTagged, Shape};
use std::fmt::Write as _;
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// One log record as the listener streams it.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub level: Level,
    pub target: String,
    /// `message key=value ...`, including the fields of the enclosing spans (interface, call).
    pub text: String,
}

/// Subscribers of the live log. Slow subscribers lose lines (they see `Lagged`), the service
/// never waits for them.
#[derive(Debug, Clone)]
pub struct LogBus {
    sender: broadcast::Sender<LogLine>,
}

impl LogBus {
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(1024);
        LogBus { sender }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LogLine> {
        self.sender.subscribe()
    }
}

impl Default for LogBus {
    fn default() -> Self {
        Self::new()
    }
}

struct TapLayer {
    bus: LogBus,
}

#[derive(Default)]
struct FieldText {
    message: String,
    fields: String,
}

impl Visit for FieldText {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={:?}", field.name(), value);
        }
    }
}

/// Span fields rendered once when the span is created, kept in the span's extensions.
struct SpanFields(String);

impl<S> Layer<S> for TapLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let mut text = FieldText::default();
        attrs.record(&mut text);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(text.fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if self.bus.sender.receiver_count() == 0 {
            return;
        }
        let mut text = FieldText::default();
        event.record(&mut text);
        let mut line = text.message;
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<SpanFields>() {
                    line.push_str(&fields.0);
                }
            }
        }
        line.push_str(&text.fields);
        let _ = self.bus.sender.send(LogLine {
            level: *event.metadata().level(),
            target: event.metadata().target().to_string(),
            text: line,
        });
    }
}

/// The ESL client library logs an INFO and a WARN line on every failed reconnect (every 10 s
/// while FreeSWITCH is down); the inbound link already logs each change of state once, so
/// the library says only errors unless the level names it.
fn filter_directives(level: &str) -> String {
    if level.contains("freeswitch_esl_tokio") {
        level.to_string()
    } else {
        format!("{level},freeswitch_esl_tokio=error")
    }
}

/// Installs the global subscriber; every line names `host`. Returns the bus the listener
/// streams from.
pub fn init(settings: &LogSettings, host: &str) -> LogBus {
    let bus = LogBus::new();
    let filter = EnvFilter::try_new(filter_directives(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let tap = TapLayer { bus: bus.clone() };
    let registry = tracing_subscriber::registry().with(filter).with(tap);
    let result = match settings.format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_writer(HostTagged::new(std::io::stderr, host, Shape::Text)),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(HostTagged::new(std::io::stderr, host, Shape::Json)),
            )
            .try_init(),
    };
    // A second init (tests) keeps the first subscriber; that is fine.
    let _ = result;
    bus
}

/// FreeSWITCH's numeric log levels (`log 7` = debug) mapped to tracing's.
pub fn level_from_freeswitch(level: &str) -> Option<Level> {
    let level = level.trim().to_ascii_lowercase();
    Some(match level.as_str() {
        "0" | "console" | "1" | "alert" | "2" | "crit" | "3" | "err" | "error" => Level::ERROR,
        "4" | "warning" | "warn" => Level::WARN,
        "5" | "notice" | "6" | "info" => Level::INFO,
        "7" | "debug" => Level::DEBUG,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_esl_library_says_only_errors_unless_asked() {
        assert_eq!(
            filter_directives("info,skypopen=debug"),
            "info,skypopen=debug,freeswitch_esl_tokio=error"
        );
        assert_eq!(
            filter_directives("info,freeswitch_esl_tokio=debug"),
            "info,freeswitch_esl_tokio=debug"
        );
        assert!(EnvFilter::try_new(filter_directives("warn")).is_ok());
    }
}
