//! The event bus the rest of the sidecar publishes into (MESSAGE events for incoming chats,
//! BACKGROUND_JOB results, CUSTOM notices). Every listener connection and any other part may
//! subscribe; a slow subscriber falls behind and learns it (`Lagged`), the publisher never
//! waits.

use crate::switch::esl::{Event, EventFormat, EventSource};
use bytes::Bytes;
use std::sync::{Arc, OnceLock};
use tokio::sync::broadcast;

/// A published event with its renderings cached, so N connections in the same format render
/// it once.
#[derive(Debug)]
pub struct Published {
    event: Event,
    plain: OnceLock<Bytes>,
    json: OnceLock<Bytes>,
    xml: OnceLock<Bytes>,
}

impl Published {
    pub fn event(&self) -> &Event {
        &self.event
    }

    /// The whole `text/event-*` message in `format`.
    pub fn rendered(&self, format: EventFormat) -> Bytes {
        let cell = match format {
            EventFormat::Plain => &self.plain,
            EventFormat::Json => &self.json,
            EventFormat::Xml => &self.xml,
        };
        cell.get_or_init(|| Bytes::from(self.event.render(format)))
            .clone()
    }
}

#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<Published>>,
    source: Arc<EventSource>,
}

/// Events a subscriber may fall behind by before it loses some.
pub const DEFAULT_BUS_CAPACITY: usize = 4096;

impl EventBus {
    pub fn new(source: Arc<EventSource>) -> Self {
        Self::with_capacity(source, DEFAULT_BUS_CAPACITY)
    }

    pub fn with_capacity(source: Arc<EventSource>, capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        EventBus { sender, source }
    }

    /// Stamps new events with the standard headers (`source().event("MESSAGE", ...)`).
    pub fn source(&self) -> &EventSource {
        &self.source
    }

    /// Delivers `event` to every current subscriber; returns how many there were.
    pub fn publish(&self, event: Event) -> usize {
        let published = Arc::new(Published {
            event,
            plain: OnceLock::new(),
            json: OnceLock::new(),
            xml: OnceLock::new(),
        });
        self.sender.send(published).unwrap_or(0)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.sender.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_get_events_and_cached_renderings() {
        let bus = EventBus::new(Arc::new(EventSource::new()));
        assert_eq!(bus.publish(Event::new()), 0);
        let mut receiver = bus.subscribe();
        let event = bus.source().event("MESSAGE", "test").with_body("hi");
        assert_eq!(bus.publish(event.clone()), 1);
        let published = receiver.recv().await.ok();
        let published = published.as_deref();
        assert_eq!(published.map(Published::event), Some(&event));
        let rendered = published.map(|p| p.rendered(EventFormat::Json));
        assert_eq!(rendered, Some(Bytes::from(event.render(EventFormat::Json))));
    }
}
