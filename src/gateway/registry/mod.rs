//! The interfaces as the gateway sees them: state and counters (what `sk list` shows), the
//! RR / ANY hunt, and exact-name lookups.
//!
//! Slots are indexed by the configured interface `id` (1..=4095; the original had 1..=63), so
//! `sk list` rows and the hunt pointer keep their meaning for operators who knew it. The table
//! grows to the highest id in use and never below the original's 64 slots.

mod list;

use crate::config::InterfaceConfig;
use std::sync::{Arc, Mutex, MutexGuard};

/// The highest interface id (`check` refuses more); slot 0 never holds an interface.
pub use crate::config::validate::MAX_INTERFACE_ID;
/// The original module's table: `sk list full` shows at least these slots.
const ORIGINAL_SLOTS: usize = 64;

/// Interface state, with the labels the original module showed in `sk list` (spec 5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfaceState {
    Idle,
    Down,
    Dialing,
    Up,
    Ringing,
    Prering,
    Double,
    Selected,
    HangRequested,
    PreAnswer,
    Dead,
}

impl IfaceState {
    pub fn label(self) -> &'static str {
        match self {
            IfaceState::Idle => "IDLE",
            IfaceState::Down => "DOWN",
            IfaceState::Dialing => "DIALING",
            IfaceState::Up => "UP",
            IfaceState::Ringing => "RINGING",
            IfaceState::Prering => "PRERING",
            IfaceState::Double => "DOUBLE",
            IfaceState::Selected => "SELECTD",
            IfaceState::HangRequested => "HANG_RQ",
            IfaceState::PreAnswer => "PREANSW",
            IfaceState::Dead => "DEAD",
        }
    }
}

/// The Skype side's progress of the current call, with the original's `CallFlw` labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallFlow {
    Idle,
    IncomingHangup,
    Finished,
    Cancelled,
    Failed,
    Refused,
    Ringing,
    InProgress,
    Unplaced,
    Routing,
    EarlyMedia,
    RemoteHold,
}

impl CallFlow {
    pub fn label(self) -> &'static str {
        match self {
            CallFlow::Idle => "IDLE",
            CallFlow::IncomingHangup => "INC_HNG",
            CallFlow::Finished => "FNSHED",
            CallFlow::Cancelled => "CANCLED",
            CallFlow::Failed => "FAILED",
            CallFlow::Refused => "REFUSED",
            CallFlow::Ringing => "RINGING",
            CallFlow::InProgress => "INPROGRS",
            CallFlow::Unplaced => "UNPLACD",
            CallFlow::Routing => "ROUTING",
            CallFlow::EarlyMedia => "EARLYMD",
            CallFlow::RemoteHold => "RMTEHOLD",
        }
    }
}

/// Direction of a call, for the per-interface counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    /// As `sk calls`, the metrics and `skypopen status` name it.
    pub fn label(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// What `sk list` and the hunt know of one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotView {
    pub id: u32,
    pub name: String,
    pub skype_user: String,
    pub state: IfaceState,
    pub callflow: CallFlow,
    /// FreeSWITCH channel uuid of the live call, empty when idle.
    pub uuid: String,
    pub ib_calls: u32,
    pub ib_failed: u32,
    pub ob_calls: u32,
    pub ob_failed: u32,
    /// The API session is up and the client reports itself online (CONNSTATUS).
    pub available: bool,
}

impl SlotView {
    fn new(cfg: &InterfaceConfig) -> Self {
        SlotView {
            id: cfg.id,
            name: cfg.name.clone(),
            skype_user: cfg.skype_user.clone(),
            state: IfaceState::Down,
            callflow: CallFlow::Idle,
            uuid: String::new(),
            ib_calls: 0,
            ib_failed: 0,
            ob_calls: 0,
            ob_failed: 0,
            available: false,
        }
    }

    /// Free for a new call: idle and reachable.
    pub fn is_free(&self) -> bool {
        self.state == IfaceState::Idle && self.available
    }

    /// Can carry calls (now or once its call ends): logged in, online, not DOWN.
    pub fn is_usable(&self) -> bool {
        self.available && self.state != IfaceState::Down
    }
}

struct Inner {
    slots: Vec<Option<SlotView>>,
    /// Where the next RR hunt starts (the star in `sk list`).
    next: usize,
    /// Told every state change, under the lock, so changes are told in the order they happen.
    observer: Option<StateObserver>,
}

/// Called with the slot after a change and its state before; must not block.
pub type StateObserver = Arc<dyn Fn(&SlotView, IfaceState) + Send + Sync>;

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("slots", &self.slots)
            .field("next", &self.next)
            .field("observed", &self.observer.is_some())
            .finish()
    }
}

/// Tells `observer` of `slot`'s change from `before`, if its state changed. A free function
/// so callers can hold a slot and the observer, two fields of `Inner`, at once.
fn tell(observer: &Option<StateObserver>, slot: &SlotView, before: IfaceState) {
    if slot.state != before {
        if let Some(observer) = observer {
            observer(slot, before);
        }
    }
}

/// Shared table of interfaces. Cheap to clone. Critical sections are short and never cross an
/// `.await`; audio never touches it.
#[derive(Debug, Clone)]
pub struct Registry {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("no interface named {0:?}")]
    NotFound(String),
    #[error("interface {name} is busy ({state})")]
    Busy { name: String, state: &'static str },
    #[error("interface {0} is not available (client not attached or offline)")]
    Unavailable(String),
    #[error("no idle interface")]
    NoneIdle,
}

/// An interface reserved for one call. Dropping it without [`Reservation::commit`] puts the
/// interface back to IDLE, so an error path can never leak a SELECTD interface.
#[derive(Debug)]
pub struct Reservation {
    registry: Registry,
    id: u32,
    name: String,
    /// The state the reservation put the interface in, and rolls back from.
    held: IfaceState,
    committed: bool,
}

impl Reservation {
    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The call now owns the interface; it must return it with [`Registry::release`].
    pub fn commit(mut self) -> u32 {
        self.committed = true;
        self.id
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.committed {
            self.registry.update(self.id, |slot| {
                if slot.state == self.held {
                    slot.state = IfaceState::Idle;
                }
            });
        }
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    pub fn new() -> Self {
        Registry {
            inner: Arc::new(Mutex::new(Inner {
                slots: vec![None; ORIGINAL_SLOTS],
                next: 0,
                observer: None,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves plain data behind; keep serving.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds an interface, or refreshes its name and account if its slot exists (reload).
    /// Ids outside 1..=[`MAX_INTERFACE_ID`] are refused (config validation reports them).
    pub fn upsert(&self, cfg: &InterfaceConfig) -> bool {
        if cfg.id == 0 || cfg.id > MAX_INTERFACE_ID {
            return false;
        }
        let index = cfg.id as usize;
        let mut inner = self.lock();
        if inner.slots.len() <= index {
            inner.slots.resize(index + 1, None);
        }
        match &mut inner.slots[index] {
            Some(slot) => {
                slot.name = cfg.name.clone();
                slot.skype_user = cfg.skype_user.clone();
            }
            empty => *empty = Some(SlotView::new(cfg)),
        }
        true
    }

    pub fn remove(&self, id: u32) -> Option<SlotView> {
        let mut inner = self.lock();
        inner.slots.get_mut(id as usize).and_then(Option::take)
    }

    /// Every state change from now on goes to `observer`.
    pub fn observe(&self, observer: StateObserver) {
        self.lock().observer = Some(observer);
    }

    fn update<R>(&self, id: u32, f: impl FnOnce(&mut SlotView) -> R) -> Option<R> {
        let mut inner = self.lock();
        let Inner {
            slots, observer, ..
        } = &mut *inner;
        let slot = slots.get_mut(id as usize).and_then(Option::as_mut)?;
        let before = slot.state;
        let result = f(slot);
        tell(observer, slot, before);
        Some(result)
    }

    pub fn get(&self, id: u32) -> Option<SlotView> {
        self.lock().slots.get(id as usize).cloned().flatten()
    }

    /// Exact name match (the original matched prefixes, so `skype1` could pick `skype10`).
    pub fn by_name(&self, name: &str) -> Option<SlotView> {
        self.lock()
            .slots
            .iter()
            .flatten()
            .find(|s| s.name == name)
            .cloned()
    }

    /// Interfaces logged in as `skype_user` (case-insensitive, as Skype names are), in slot order.
    pub fn by_user(&self, skype_user: &str) -> Vec<SlotView> {
        self.lock()
            .slots
            .iter()
            .flatten()
            .filter(|s| s.skype_user.eq_ignore_ascii_case(skype_user))
            .cloned()
            .collect()
    }

    pub fn snapshot(&self) -> Vec<SlotView> {
        self.lock().slots.iter().flatten().cloned().collect()
    }

    pub fn set_state(&self, id: u32, state: IfaceState) {
        self.update(id, |s| s.state = state);
    }

    pub fn set_callflow(&self, id: u32, callflow: CallFlow) {
        self.update(id, |s| s.callflow = callflow);
    }

    pub fn set_uuid(&self, id: u32, uuid: &str) {
        self.update(id, |s| s.uuid = uuid.to_string());
    }

    /// The session came up or went down, or the client went online / offline.
    pub fn set_available(&self, id: u32, available: bool) {
        self.update(id, |s| {
            s.available = available;
            match (available, s.state) {
                (true, IfaceState::Down | IfaceState::Dead) if s.uuid.is_empty() => {
                    s.state = IfaceState::Idle;
                    s.callflow = CallFlow::Idle;
                }
                (false, IfaceState::Idle) => s.state = IfaceState::Down,
                _ => {}
            }
        });
    }

    pub fn count_call(&self, id: u32, direction: Direction) {
        self.update(id, |s| match direction {
            Direction::Inbound => s.ib_calls += 1,
            Direction::Outbound => s.ob_calls += 1,
        });
    }

    pub fn count_failure(&self, id: u32, direction: Direction) {
        self.update(id, |s| match direction {
            Direction::Inbound => s.ib_failed += 1,
            Direction::Outbound => s.ob_failed += 1,
        });
    }

    /// The call on `id` is over: back to IDLE if the client is still usable, else DOWN.
    pub fn release(&self, id: u32) {
        self.update(id, |s| {
            s.uuid.clear();
            s.callflow = CallFlow::Idle;
            s.state = if s.available {
                IfaceState::Idle
            } else {
                IfaceState::Down
            };
        });
    }

    /// RR hunt (spec 9.5): one lap of the table from the pointer, which advances over every
    /// slot it looks at, so successive hunts rotate fairly. Accepts a free interface whose account
    /// differs from `exclude_user` when given (transfers). Marks it SELECTD.
    pub fn hunt(&self, exclude_user: Option<&str>) -> Result<Reservation, ClaimError> {
        let mut inner = self.lock();
        let Inner {
            slots,
            next,
            observer,
        } = &mut *inner;
        let count = slots.len();
        for _ in 0..count {
            let index = *next % count;
            *next = (index + 1) % count;
            let Some(slot) = slots[index].as_mut() else {
                continue;
            };
            let excluded = exclude_user.is_some_and(|u| slot.skype_user.eq_ignore_ascii_case(u));
            if slot.is_free() && !excluded {
                return Ok(self.reserve(slot, observer, IfaceState::Selected));
            }
        }
        Err(ClaimError::NoneIdle)
    }

    /// Reserve the interface called exactly `name`.
    pub fn claim(&self, name: &str) -> Result<Reservation, ClaimError> {
        let mut inner = self.lock();
        let Inner {
            slots, observer, ..
        } = &mut *inner;
        let slot = slots
            .iter_mut()
            .flatten()
            .find(|s| s.name == name)
            .ok_or_else(|| ClaimError::NotFound(name.to_string()))?;
        if !slot.available {
            return Err(ClaimError::Unavailable(slot.name.clone()));
        }
        if slot.state != IfaceState::Idle {
            return Err(ClaimError::Busy {
                name: slot.name.clone(),
                state: slot.state.label(),
            });
        }
        Ok(self.reserve(slot, observer, IfaceState::Selected))
    }

    /// Reserve a specific slot for an incoming call (state PRERING instead of SELECTD).
    pub fn claim_for_ring(&self, id: u32) -> Result<Reservation, ClaimError> {
        let mut inner = self.lock();
        let Inner {
            slots, observer, ..
        } = &mut *inner;
        let slot = slots
            .get_mut(id as usize)
            .and_then(Option::as_mut)
            .ok_or_else(|| ClaimError::NotFound(format!("#{id}")))?;
        if !slot.is_free() {
            return Err(ClaimError::Busy {
                name: slot.name.clone(),
                state: slot.state.label(),
            });
        }
        Ok(self.reserve(slot, observer, IfaceState::Prering))
    }

    /// Marks a free `slot` `held` for a new reservation, telling the observer.
    fn reserve(
        &self,
        slot: &mut SlotView,
        observer: &Option<StateObserver>,
        held: IfaceState,
    ) -> Reservation {
        let before = slot.state;
        slot.state = held;
        tell(observer, slot, before);
        self.reservation(slot.id, slot.name.clone(), held)
    }

    fn reservation(&self, id: u32, name: String, held: IfaceState) -> Reservation {
        Reservation {
            registry: self.clone(),
            id,
            name,
            held,
            committed: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn iface(id: u32, name: &str, user: &str) -> InterfaceConfig {
        InterfaceConfig::with_defaults(id, name, &format!(":{}", 100 + id), user)
    }

    pub(super) fn registry(n: u32) -> Registry {
        let r = Registry::new();
        for id in 1..=n {
            r.upsert(&iface(id, &format!("interface{id}"), &format!("user{id}")));
            r.set_available(id, true);
        }
        r
    }

    #[test]
    fn rr_hunt_rotates_fairly_over_three_interfaces() {
        let r = registry(3);
        let picks: Vec<u32> = (0..9)
            .map(|_| {
                let res = r.hunt(None).unwrap();
                let id = res.commit();
                r.release(id);
                id
            })
            .collect();
        assert_eq!(picks, vec![1, 2, 3, 1, 2, 3, 1, 2, 3]);
    }

    #[test]
    fn hunt_skips_busy_and_unavailable_and_reports_none_idle() {
        let r = registry(3);
        r.set_state(1, IfaceState::Up);
        r.set_available(2, false);
        let res = r.hunt(None).unwrap();
        assert_eq!(res.id(), 3);
        let _held = res.commit();
        assert_eq!(r.hunt(None).unwrap_err(), ClaimError::NoneIdle);
    }

    #[test]
    fn dropped_reservation_returns_to_idle() {
        let r = registry(1);
        {
            let res = r.hunt(None).unwrap();
            assert_eq!(r.get(res.id()).unwrap().state, IfaceState::Selected);
        }
        assert_eq!(r.get(1).unwrap().state, IfaceState::Idle);
        {
            let _ring = r.claim_for_ring(1).unwrap();
            assert_eq!(r.get(1).unwrap().state, IfaceState::Prering);
        }
        assert_eq!(r.get(1).unwrap().state, IfaceState::Idle);
    }

    #[test]
    fn names_match_exactly_not_by_prefix() {
        let r = Registry::new();
        r.upsert(&iface(1, "skype10", "u"));
        r.set_available(1, true);
        assert!(r.by_name("skype1").is_none());
        assert_eq!(
            r.claim("skype1").unwrap_err(),
            ClaimError::NotFound("skype1".into())
        );
        assert_eq!(r.claim("skype10").unwrap().id(), 1);
    }

    #[test]
    fn transfer_hunt_excludes_the_callers_account() {
        let r = Registry::new();
        r.upsert(&iface(1, "a", "user1"));
        r.upsert(&iface(2, "b", "USER1"));
        r.upsert(&iface(3, "c", "user3"));
        for id in 1..=3 {
            r.set_available(id, true);
        }
        assert_eq!(r.hunt(Some("user1")).unwrap().id(), 3);
    }

    #[test]
    fn ids_past_the_original_63_have_their_slots_and_take_turns() {
        let r = registry(2);
        for id in [64, 4095] {
            assert!(r.upsert(&iface(id, &format!("big{id}"), "u")));
            r.set_available(id, true);
        }
        assert!(!r.upsert(&iface(4096, "too-big", "u")));
        assert!(!r.upsert(&iface(0, "zero", "u")));
        let picks: Vec<u32> = (0..8)
            .map(|_| {
                let hunt = r.hunt(None).unwrap();
                let id = hunt.id();
                drop(hunt);
                id
            })
            .collect();
        assert_eq!(picks, [1, 2, 64, 4095, 1, 2, 64, 4095]);
        assert_eq!(r.remove(4095).map(|s| s.id), Some(4095));
        assert!(r.get(4095).is_none());
        let list = r.render_list(false);
        assert!(list.contains("  64\t[ big64]"), "{list}");
        assert!(list.contains("Total Interfaces: 3 "), "{list}");
    }
}
