//! Each interface's Skype contacts and their presence, as its client reports them: read in
//! full when the client is ready (`SEARCH FRIENDS`, then each contact's status and name, a few
//! at a time), kept current from the client's `USER <h> ONLINESTATUS|BUDDYSTATUS|FULLNAME`
//! notifications. `sk contacts` and `skypopen_contacts` show them.
//!
//! What the client says is kept as inert text: a handle must look like a Skype name or a
//! number, a name is cut to [`NAME_LIMIT`] characters with control characters dropped, and a
//! book holds at most [`BOOK_LIMIT`] contacts.

mod presence;
mod probe;
mod refresh;
mod render;
mod requests;

pub use presence::{publish, PresenceQueue, PresenceState};
pub use probe::answer_probes;
pub use refresh::{read_one, refresh};
pub use render::{render_json, render_table};
pub use requests::{on_request as on_auth_request, sk_auth, AuthRequests};

use dashmap::DashMap;
use std::collections::BTreeMap;
use std::time::SystemTime;

pub const NAME_LIMIT: usize = 256;
pub const BOOK_LIMIT: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub handle: String,
    pub display_name: String,
    /// ONLINESTATUS as the client reported it (UNKNOWN until it did).
    pub status: String,
    /// BUDDYSTATUS: 3 for a contact in the list.
    pub buddy: u8,
    /// When the status last changed (or was first read).
    pub since: SystemTime,
}

impl Contact {
    fn new(handle: &str) -> Contact {
        Contact {
            handle: handle.to_string(),
            display_name: String::new(),
            status: "UNKNOWN".into(),
            buddy: 3,
            since: SystemTime::now(),
        }
    }

    /// How FreeSWITCH is to see this contact on `login`.
    pub fn presence(&self, login: &str, busy: bool) -> PresenceState {
        PresenceState {
            login: login.to_string(),
            handle: self.handle.clone(),
            status: self.status.clone(),
            busy,
        }
    }
}

/// What a notification changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A contact's status moved (worth telling FreeSWITCH).
    Status { handle: String, status: String },
    /// A contact joined the list: its name and status are still to be read.
    Added { handle: String },
}

#[derive(Default)]
pub struct Contacts {
    books: DashMap<u32, BTreeMap<String, Contact>>,
}

impl Contacts {
    /// Replaces an interface's book with what a full read found.
    pub fn replace(&self, interface: u32, contacts: Vec<Contact>) {
        let book = contacts
            .into_iter()
            .take(BOOK_LIMIT)
            .map(|c| (c.handle.to_ascii_lowercase(), c))
            .collect();
        self.books.insert(interface, book);
    }

    /// Applies one `USER <h> <property> <value>` notification; the change when a contact's
    /// status moved.
    pub fn update(
        &self,
        interface: u32,
        handle: &str,
        property: &str,
        value: &str,
    ) -> Option<Change> {
        if !is_handle(handle) {
            return None;
        }
        let mut book = self.books.entry(interface).or_default();
        let key = handle.to_ascii_lowercase();
        if !book.contains_key(&key) {
            if book.len() >= BOOK_LIMIT || property != "BUDDYSTATUS" {
                // Only the list itself adds a contact; a status of someone not in it is news
                // about a stranger.
                return None;
            }
            book.insert(key.clone(), Contact::new(handle));
            return Some(Change::Added {
                handle: handle.to_string(),
            });
        }
        let contact = book.get_mut(&key)?;
        match property {
            "ONLINESTATUS" => {
                let status = status_word(value);
                if status == contact.status {
                    return None;
                }
                contact.status = status.clone();
                contact.since = SystemTime::now();
                Some(Change::Status {
                    handle: contact.handle.clone(),
                    status,
                })
            }
            "FULLNAME" | "DISPLAYNAME" => {
                contact.display_name = inert(value, NAME_LIMIT);
                None
            }
            "BUDDYSTATUS" => {
                let buddy = value.trim().parse().unwrap_or(0);
                if buddy == 3 {
                    contact.buddy = 3;
                } else {
                    book.remove(&key);
                }
                None
            }
            _ => None,
        }
    }

    /// Puts one contact read in full into the book (after it joined the list).
    pub fn upsert(&self, interface: u32, contact: Contact) {
        if let Some(mut book) = self.books.get_mut(&interface) {
            let key = contact.handle.to_ascii_lowercase();
            if book.contains_key(&key) {
                book.insert(key, contact);
            }
        }
    }

    /// A contact's state with `busy` as given, when `handle` is in the interface's book.
    pub fn presence(
        &self,
        interface: u32,
        login: &str,
        handle: &str,
        busy: bool,
    ) -> Option<PresenceState> {
        let book = self.books.get(&interface)?;
        let contact = book.get(&handle.to_ascii_lowercase())?;
        Some(contact.presence(login, busy))
    }

    /// The interface's contacts in name order.
    pub fn list(&self, interface: u32) -> Vec<Contact> {
        self.books
            .get(&interface)
            .map(|book| book.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn forget(&self, interface: u32) {
        self.books.remove(&interface);
    }
}

/// A Skype name (letters, digits, `.`, `,`, `-`, `_`, 1..64) or a `+<digits>` number.
pub fn is_handle(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && (text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ',' | '-' | '_'))
            || text
                .strip_prefix('+')
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())))
}

/// An ONLINESTATUS value as kept: a short upper-case word.
fn status_word(value: &str) -> String {
    inert(value, 16).to_ascii_uppercase()
}

/// Trimmed, control characters dropped, cut to `limit` characters.
fn inert(text: &str, limit: usize) -> String {
    crate::gateway::text::inert(text.trim(), limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(handles: &[&str]) -> Contacts {
        let contacts = Contacts::default();
        contacts.replace(1, handles.iter().map(|h| Contact::new(h)).collect());
        contacts
    }

    #[test]
    fn a_status_change_is_reported_once() {
        let c = book(&["alice"]);
        let change = c.update(1, "alice", "ONLINESTATUS", "AWAY");
        assert_eq!(
            change,
            Some(Change::Status {
                handle: "alice".into(),
                status: "AWAY".into()
            })
        );
        assert_eq!(c.update(1, "alice", "ONLINESTATUS", "AWAY"), None);
        assert_eq!(c.list(1)[0].status, "AWAY");
    }

    #[test]
    fn strangers_and_hostile_text_stay_out() {
        let c = book(&["alice"]);
        assert_eq!(c.update(1, "zed", "ONLINESTATUS", "ONLINE"), None);
        assert_eq!(c.update(1, "bad\nname", "BUDDYSTATUS", "3"), None);
        assert_eq!(c.update(1, "50%off", "BUDDYSTATUS", "3"), None);
        c.update(
            1,
            "alice",
            "FULLNAME",
            &format!("A\r\nB{}", "x".repeat(10_000)),
        );
        let alice = &c.list(1)[0];
        assert!(alice.display_name.starts_with("AB"));
        assert_eq!(alice.display_name.chars().count(), NAME_LIMIT);
        assert_eq!(c.list(1).len(), 1);
    }

    #[test]
    fn the_list_adds_and_removes() {
        let c = book(&["alice"]);
        assert_eq!(
            c.update(1, "carol", "BUDDYSTATUS", "3"),
            Some(Change::Added {
                handle: "carol".into()
            })
        );
        assert_eq!(c.list(1).len(), 2);
        c.update(1, "alice", "BUDDYSTATUS", "1");
        let handles: Vec<String> = c.list(1).into_iter().map(|c| c.handle).collect();
        assert_eq!(handles, ["carol"]);
    }

    #[test]
    fn handles_are_skype_names_or_numbers() {
        assert!(is_handle("echo123") && is_handle("live.user_1") && is_handle("+3906123"));
        assert!(!is_handle("") && !is_handle("a b") && !is_handle("+") && !is_handle("x%y"));
    }
}
