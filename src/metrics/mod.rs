//! What the sidecar counts for Prometheus: the families the gateway and the media path update
//! as things happen, plus collectors that read the rest (interface states, live calls, media
//! counters of calls in progress) at scrape time. The exposition format is the
//! `prometheus-client` crate's; `http.rs` serves it with `/health`.

pub mod http;
mod media;

pub use media::MediaTotals;

use prometheus_client::collector::Collector;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::{Arc, Mutex};

/// Label sets are small lists of name/value pairs.
pub type Labels = Vec<(&'static str, String)>;

/// Frame waits, in seconds: a frame either leaves on arrival (0) or waits whole slots of 20 ms.
const LATENCY_BUCKETS: [f64; 9] = [
    0.0005, 0.002, 0.01, 0.021, 0.041, 0.061, 0.081, 0.101, 0.201,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

pub struct Metrics {
    registry: Mutex<Registry>,
    /// Ended calls by `direction` (inbound/outbound) and FreeSWITCH hangup `cause`.
    pub calls_ended: Family<Labels, Counter>,
    /// Chat messages by `event`: received (read from a client), delivered (FreeSWITCH took
    /// the MESSAGE), duplicate (delivered before; skipped), refused (given up).
    pub chats: Family<Labels, Counter>,
    /// Chats waiting for FreeSWITCH to come back.
    pub chats_waiting: Gauge,
    /// Time each audio frame spent in the sidecar, by `direction` (to_skype / to_switch).
    pub media_latency: Family<Labels, Histogram, fn() -> Histogram>,
    pub esl_reconnects: Counter,
    /// Client restarts scheduled by the supervisor, by `interface`.
    pub client_restarts: Family<Labels, Counter>,
    pub media: Arc<MediaTotals>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("skypopen");
        let calls_ended = Family::<Labels, Counter>::default();
        registry.register(
            "calls_ended",
            "Calls ended, by direction and FreeSWITCH hangup cause",
            calls_ended.clone(),
        );
        let chats = Family::<Labels, Counter>::default();
        registry.register(
            "chats",
            "Chat messages: received, delivered, duplicate (skipped), refused",
            chats.clone(),
        );
        let chats_waiting = Gauge::default();
        registry.register(
            "chats_waiting",
            "Chats waiting for FreeSWITCH",
            chats_waiting.clone(),
        );
        let media_latency =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "media_latency_seconds",
            "Time an audio frame spent in the sidecar, arrival to leaving",
            media_latency.clone(),
        );
        let esl_reconnects = Counter::default();
        registry.register(
            "esl_reconnects",
            "Times the inbound Event Socket connection came back after a loss",
            esl_reconnects.clone(),
        );
        let client_restarts = Family::<Labels, Counter>::default();
        registry.register(
            "client_restarts",
            "Skype client restarts scheduled by the supervisor",
            client_restarts.clone(),
        );
        let media = Arc::new(MediaTotals::default());
        registry.register_collector(Box::new(media::MediaCollector(Arc::clone(&media))));
        Arc::new(Metrics {
            registry: Mutex::new(registry),
            calls_ended,
            chats,
            chats_waiting,
            media_latency,
            esl_reconnects,
            client_restarts,
            media,
        })
    }

    /// Adds a collector read at every scrape.
    pub fn register_collector(&self, collector: Box<dyn Collector>) {
        lock(&self.registry).register_collector(collector);
    }

    /// The text exposition of everything.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &lock(&self.registry));
        out
    }

    pub fn chat(&self, event: &str) {
        self.chats
            .get_or_create(&vec![("event", event.to_string())])
            .inc();
    }

    pub fn call_ended(&self, direction: &str, cause: &str) {
        self.calls_ended
            .get_or_create(&vec![
                ("direction", direction.to_string()),
                ("cause", cause.to_string()),
            ])
            .inc();
    }

    /// The latency histogram of one media direction, for a call's pump.
    pub fn latency(&self, direction: &str) -> Histogram {
        self.media_latency
            .get_or_create(&vec![("direction", direction.to_string())])
            .clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_encode_with_their_labels() {
        let metrics = Metrics::new();
        metrics.call_ended("outbound", "USER_BUSY");
        metrics.chat("delivered");
        metrics.latency("to_skype").observe(0.0);
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"skypopen_calls_ended_total{direction="outbound",cause="USER_BUSY"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"skypopen_chats_total{event="delivered"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"skypopen_media_latency_seconds_bucket{le="0.0005",direction="to_skype"} 1"#
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
