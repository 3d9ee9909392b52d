//! Who is online and who is in whose contact list, as the Skype Desktop API reports it
//! (Skype4Py documents the values): `ONLINESTATUS` of a user and the `BUDDYSTATUS` an account
//! has for each name it knows.
//!
//! Choices where the API is silent: every account starts with the same contacts, the remote
//! people (alice, bob, carol, dave) and the echo bot, all authorized (BUDDYSTATUS 3); remote
//! people start ONLINE except dave (OFFLINE), bots are always ONLINE, an account is ONLINE
//! while one of its clients is logged in and OFFLINE otherwise. `ctl presence` changes a remote
//! person's status; `ctl contact` adds or removes a contact.

use super::accounts::{self, Identity};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnlineStatus {
    Unknown,
    Offline,
    Online,
    Away,
    NotAvailable,
    DoNotDisturb,
    SkypeOut,
    SkypeMe,
    Invisible,
}

impl OnlineStatus {
    pub const ALL: [OnlineStatus; 9] = [
        OnlineStatus::Unknown,
        OnlineStatus::Offline,
        OnlineStatus::Online,
        OnlineStatus::Away,
        OnlineStatus::NotAvailable,
        OnlineStatus::DoNotDisturb,
        OnlineStatus::SkypeOut,
        OnlineStatus::SkypeMe,
        OnlineStatus::Invisible,
    ];

    /// The API's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            OnlineStatus::Unknown => "UNKNOWN",
            OnlineStatus::Offline => "OFFLINE",
            OnlineStatus::Online => "ONLINE",
            OnlineStatus::Away => "AWAY",
            OnlineStatus::NotAvailable => "NA",
            OnlineStatus::DoNotDisturb => "DND",
            OnlineStatus::SkypeOut => "SKYPEOUT",
            OnlineStatus::SkypeMe => "SKYPEME",
            OnlineStatus::Invisible => "INVISIBLE",
        }
    }

    pub fn parse(word: &str) -> Option<OnlineStatus> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(word.trim()))
    }

    /// What other users see: an invisible user looks offline.
    pub fn as_seen(self) -> OnlineStatus {
        match self {
            OnlineStatus::Invisible => OnlineStatus::Offline,
            other => other,
        }
    }
}

/// `BUDDYSTATUS`: 0 never in the list, 1 deleted from it, 2 pending authorization, 3 added.
pub mod buddy {
    pub const NEVER: u8 = 0;
    pub const DELETED: u8 = 1;
    pub const PENDING: u8 = 2;
    pub const ADDED: u8 = 3;
}

const DEFAULT_CONTACTS: [&str; 5] = ["alice", "bob", "carol", "dave", "echo123"];

/// An account's contact list before anything changed it.
pub fn default_contacts() -> BTreeMap<String, u8> {
    DEFAULT_CONTACTS
        .iter()
        .map(|h| (h.to_string(), buddy::ADDED))
        .collect()
}

/// A remote person's or a bot's status before `ctl presence` changed it; `None` for accounts
/// (their clients decide) and unknown names.
pub fn default_status(handle: &str) -> Option<OnlineStatus> {
    match accounts::identify(handle)? {
        Identity::Bot(_) => Some(OnlineStatus::Online),
        Identity::Remote if handle.eq_ignore_ascii_case("dave") => Some(OnlineStatus::Offline),
        Identity::Remote => Some(OnlineStatus::Online),
        Identity::Pstn => Some(OnlineStatus::SkypeOut),
        Identity::User => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_and_write_the_api_words() {
        for status in OnlineStatus::ALL {
            assert_eq!(OnlineStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(OnlineStatus::parse("away"), Some(OnlineStatus::Away));
        assert_eq!(OnlineStatus::parse("BUSY"), None);
        assert_eq!(OnlineStatus::Invisible.as_seen(), OnlineStatus::Offline);
    }

    #[test]
    fn defaults_follow_the_documented_choices() {
        assert_eq!(default_status("alice"), Some(OnlineStatus::Online));
        assert_eq!(default_status("dave"), Some(OnlineStatus::Offline));
        assert_eq!(default_status("echo123"), Some(OnlineStatus::Online));
        assert_eq!(default_status("user1"), None);
        assert_eq!(default_contacts().get("bob"), Some(&buddy::ADDED));
    }
}
