//! One worker per interface: learns of unseen messages (notifications and `SEARCH
//! MISSEDCHATMESSAGES`), fetches each one, has it delivered, and only then marks it SEEN. It
//! works through unseen messages oldest id first, one at a time, so FreeSWITCH gets them in
//! order.

use super::delivery::{Delivered, DeliveryError};
use super::message::IncomingChat;
use crate::config::InterfaceConfig;
use crate::gateway::Gateway;
use crate::shutdown::CancellationToken;
use crate::skype::api::{
    ChatMessageEvent, ChatMessageId, ChatMessageProperty, ChatMessageStatus, ChatMessageType,
    Command, Incoming, Notification,
};
use crate::skype::session::{SessionError, SessionHandle};
use crate::switch::inbound::LinkState;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, info, warn, Instrument};

/// Notifications waiting for the worker; beyond this the worker is told to search instead.
const INPUT_QUEUE: usize = 1024;
/// After a request timed out, wait this long before asking the client again.
const CLIENT_RETRY: Duration = Duration::from_secs(1);

enum Input {
    /// The session (re)connected: look for what arrived meanwhile.
    Ready,
    Received(ChatMessageId),
}

/// What the interface actor holds to feed its chat worker.
#[derive(Clone)]
pub struct InterfaceChat {
    tx: mpsc::Sender<Input>,
    /// Set when a notification could not be queued: the worker searches for it instead.
    missed: Arc<AtomicBool>,
}

impl InterfaceChat {
    pub fn spawn(
        gw: Gateway,
        cfg: InterfaceConfig,
        session: SessionHandle,
        stop: CancellationToken,
    ) -> InterfaceChat {
        let (tx, rx) = mpsc::channel(INPUT_QUEUE);
        let missed = Arc::new(AtomicBool::new(false));
        let span = tracing::info_span!("chat", interface = %cfg.name);
        let tasks = gw.tasks.clone();
        let worker = Worker {
            gw,
            cfg,
            session,
            stop,
            rx,
            missed: missed.clone(),
            pending: BTreeSet::new(),
            search_needed: false,
        };
        tasks.spawn(worker.run().instrument(span));
        InterfaceChat { tx, missed }
    }

    /// The session is ready (at start-up and after every reconnect).
    pub fn on_ready(&self) {
        self.push(Input::Ready);
    }

    /// Every notification of the interface's session; takes the ones about chats.
    pub fn on_notification(&self, incoming: &Incoming) {
        if incoming.tag.is_some() {
            return;
        }
        if let Notification::ChatMessage {
            id,
            event: ChatMessageEvent::Status(ChatMessageStatus::Received),
        } = &incoming.notification
        {
            self.push(Input::Received(*id));
        }
    }

    fn push(&self, input: Input) {
        if self.tx.try_send(input).is_err() {
            self.missed.store(true, Ordering::Relaxed);
        }
    }
}

/// How one message went.
enum Step {
    /// Nothing more to do with it.
    Done,
    /// The client cannot answer now; keep it and wait for the session.
    ClientUnavailable,
    Stopped,
}

struct Worker {
    gw: Gateway,
    cfg: InterfaceConfig,
    session: SessionHandle,
    stop: CancellationToken,
    rx: mpsc::Receiver<Input>,
    missed: Arc<AtomicBool>,
    pending: BTreeSet<u64>,
    search_needed: bool,
}

impl Worker {
    async fn run(mut self) {
        let mut link = self.gw.switch.state();
        let mut link_up = *link.borrow_and_update() == LinkState::Up;
        loop {
            self.drain_inputs();
            if self.search_needed && self.session_ready() {
                match self.search().await {
                    Ok(()) => self.search_needed = false,
                    Err(Step::Stopped) => return,
                    Err(_) => {}
                }
            }
            let next = self.pending.first().copied();
            let waiting_for_client = match next {
                Some(id) => match self.handle(ChatMessageId(id)).await {
                    Step::Done => {
                        self.pending.remove(&id);
                        continue;
                    }
                    Step::ClientUnavailable => true,
                    Step::Stopped => return,
                },
                None => false,
            } || self.search_needed;
            // Idle, or blocked on the client: wait for something to change.
            tokio::select! {
                _ = self.stop.cancelled() => return,
                input = self.rx.recv() => match input {
                    Some(input) => self.take(input),
                    None => return,
                },
                changed = link.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let up = *link.borrow_and_update() == LinkState::Up;
                    if up && !link_up {
                        // Messages that came while FreeSWITCH was away were queued or are
                        // still unseen in the client; a search finds the ones we lost track of.
                        self.search_needed = true;
                    }
                    link_up = up;
                }
                _ = tokio::time::sleep(CLIENT_RETRY), if waiting_for_client => {}
            }
        }
    }

    fn session_ready(&self) -> bool {
        matches!(
            self.session.state(),
            crate::skype::session::SessionState::Ready { .. }
        )
    }

    fn drain_inputs(&mut self) {
        while let Ok(input) = self.rx.try_recv() {
            self.take(input);
        }
        if self.missed.swap(false, Ordering::Relaxed) {
            self.search_needed = true;
        }
    }

    fn take(&mut self, input: Input) {
        match input {
            Input::Ready => self.search_needed = true,
            Input::Received(id) => {
                self.pending.insert(id.0);
            }
        }
    }

    async fn search(&mut self) -> Result<(), Step> {
        match self
            .session
            .request(Command::SearchMissedChatMessages)
            .await
        {
            Ok(Notification::ChatMessages(ids)) => {
                if !ids.is_empty() {
                    info!(
                        count = ids.len(),
                        "unseen chat messages found in the client"
                    );
                }
                self.pending.extend(ids.iter().map(|id| id.0));
                Ok(())
            }
            Ok(other) => {
                warn!(reply = %other, "unexpected reply to SEARCH MISSEDCHATMESSAGES");
                Ok(())
            }
            Err(e) => {
                debug!(error = %e, "cannot search unseen chat messages now");
                Err(self.client_step(&e))
            }
        }
    }

    fn client_step(&self, e: &SessionError) -> Step {
        if self.stop.is_cancelled() || matches!(e, SessionError::Stopped) {
            Step::Stopped
        } else {
            Step::ClientUnavailable
        }
    }

    async fn handle(&mut self, id: ChatMessageId) -> Step {
        if !self.cfg.report_incoming_chatmessages {
            return self.mark_seen(id).await;
        }
        let chat = match self.fetch(id).await {
            Ok(Some(chat)) => {
                self.gw.metrics.chat("received");
                chat
            }
            Ok(None) => return self.mark_seen(id).await,
            Err(Fetch::Gone(e)) => {
                warn!(chat_id = %id, error = %e, "chat message cannot be read; skipped");
                return Step::Done;
            }
            Err(Fetch::Client(e)) => {
                debug!(chat_id = %id, error = %e, "chat message not fetched yet");
                return self.client_step(&e);
            }
        };
        let delivery = match self.gw.chat.delivery(&self.stop).await {
            Some(delivery) => delivery,
            None => return Step::Stopped,
        };
        match delivery.deliver(&chat, &self.stop).await {
            Ok(Delivered::Accepted(_)) | Ok(Delivered::Duplicate) => self.mark_seen(id).await,
            Err(DeliveryError::Cancelled) => {
                info!(chat_id = %id, "stopping before the chat reached FreeSWITCH; it stays unseen in the client and comes again after a restart");
                Step::Stopped
            }
            Err(e @ DeliveryError::Refused(_)) => {
                warn!(chat_id = %id, error = %e, "chat message not delivered; left unseen in the client");
                Step::Done
            }
        }
    }

    async fn mark_seen(&self, id: ChatMessageId) -> Step {
        match self.session.request(Command::SetChatMessageSeen(id)).await {
            Ok(_) => Step::Done,
            // Unseen it comes back with the next search, and the ledger stops a second delivery.
            Err(e) => {
                debug!(chat_id = %id, error = %e, "chat message not marked SEEN");
                match self.client_step(&e) {
                    Step::Stopped => Step::Stopped,
                    _ => {
                        self.note_unseen();
                        Step::Done
                    }
                }
            }
        }
    }

    fn note_unseen(&self) {
        self.missed.store(true, Ordering::Relaxed);
    }

    /// The message if it is one to deliver; `None` for other types and our own messages.
    /// The six properties are asked for at once: tagged requests are answered in any order,
    /// so reading a message costs one round trip to the client rather than six.
    async fn fetch(&self, id: ChatMessageId) -> Result<Option<IncomingChat>, Fetch> {
        let (kind, chatname, from_handle, from_dispname, body, timestamp) = tokio::join!(
            self.get(id, ChatMessageProperty::Type),
            self.get(id, ChatMessageProperty::ChatName),
            self.get(id, ChatMessageProperty::FromHandle),
            self.get(id, ChatMessageProperty::FromDispname),
            self.get(id, ChatMessageProperty::Body),
            self.get(id, ChatMessageProperty::Timestamp),
        );
        match kind? {
            ChatMessageEvent::Type(ChatMessageType::Said) => {}
            other => {
                debug!(chat_id = %id, kind = %other, "chat message is not SAID; not reported");
                return Ok(None);
            }
        }
        let mut chat = IncomingChat {
            interface: self.cfg.name.clone(),
            account: self.cfg.skype_user.clone(),
            id: id.0,
            chatname: String::new(),
            from_handle: String::new(),
            from_dispname: String::new(),
            body: String::new(),
            timestamp: 0,
            during_call: false,
            host: self.gw.settings.cluster.host.clone(),
        };
        for reply in [chatname, from_handle, from_dispname, body, timestamp] {
            match reply? {
                ChatMessageEvent::ChatName(v) => chat.chatname = v,
                ChatMessageEvent::FromHandle(v) => chat.from_handle = v,
                ChatMessageEvent::FromDispname(v) => chat.from_dispname = v,
                ChatMessageEvent::Body(v) => chat.body = v,
                ChatMessageEvent::Timestamp(v) => chat.timestamp = v,
                other => debug!(chat_id = %id, reply = %other, "unexpected chat message property"),
            }
        }
        if chat.from_handle.eq_ignore_ascii_case(&self.cfg.skype_user) {
            debug!(chat_id = %id, "our own chat message; not reported");
            return Ok(None);
        }
        chat.during_call = self
            .gw
            .live_calls
            .iter()
            .any(|call| call.interface == self.cfg.name);
        Ok(Some(chat))
    }

    async fn get(
        &self,
        id: ChatMessageId,
        property: ChatMessageProperty,
    ) -> Result<ChatMessageEvent, Fetch> {
        match self
            .session
            .request(Command::GetChatMessage { id, property })
            .await
        {
            Ok(Notification::ChatMessage { event, .. }) => Ok(event),
            Ok(other) => Err(Fetch::Gone(format!("unexpected reply `{other}`"))),
            Err(SessionError::Rejected { code, text }) => {
                Err(Fetch::Gone(format!("ERROR {code} {text}")))
            }
            Err(e) => Err(Fetch::Client(e)),
        }
    }
}

enum Fetch {
    /// The client says the message does not exist (or answers nonsense): drop it.
    Gone(String),
    /// The client cannot answer now.
    Client(SessionError),
}
