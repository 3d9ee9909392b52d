//! Contacts and presence: what a client asks (`GET USER`, `SEARCH FRIENDS`, `SET USER ...
//! BUDDYSTATUS`), and the `ctl` verbs that change a status or a contact list, each change told
//! at once to every client whose account has the name as a contact.

use super::*;
use crate::sim::presence::{self, buddy, OnlineStatus};

impl World {
    /// `handle`'s status as others see it.
    pub(super) fn status_of(&self, handle: &str) -> OnlineStatus {
        let handle = handle.to_ascii_lowercase();
        if let Some(status) = self.statuses.get(&handle) {
            return status.as_seen();
        }
        if let Some(status) = presence::default_status(&handle) {
            return status;
        }
        if accounts::account(&handle).is_some() {
            return if self.sessions_of(&handle).is_empty() {
                OnlineStatus::Offline
            } else {
                OnlineStatus::Online
            };
        }
        OnlineStatus::Unknown
    }

    pub(super) fn contacts_of(
        &mut self,
        account: &str,
    ) -> &mut std::collections::BTreeMap<String, u8> {
        self.contacts
            .entry(account.to_ascii_lowercase())
            .or_insert_with(presence::default_contacts)
    }

    fn buddy_of(&mut self, account: &str, handle: &str) -> u8 {
        self.contacts_of(account)
            .get(&handle.to_ascii_lowercase())
            .copied()
            .unwrap_or(buddy::NEVER)
    }

    /// Accounts that list `handle` as an added contact.
    fn watchers_of(&mut self, handle: &str) -> Vec<String> {
        let handle = handle.to_ascii_lowercase();
        let logged_in: HashSet<String> = self
            .sessions
            .values()
            .map(|s| s.user.to_ascii_lowercase())
            .collect();
        logged_in
            .into_iter()
            .filter(|account| self.buddy_of(account, &handle) == buddy::ADDED)
            .collect()
    }

    pub(super) fn tell_account(&self, account: &str, msg: &Down) {
        for session in self.sessions_of(account) {
            self.send(session, msg);
        }
    }
}

impl Network {
    /// `GET USER <handle> ...` from `session`'s account.
    pub fn user_info(&self, session: u64, handle: &str) -> Reply {
        let mut w = self.world();
        let account = w.sessions.get(&session).map(|s| s.user.clone());
        let status = w.status_of(handle);
        let buddy = match &account {
            Some(account) => w.buddy_of(account, handle),
            None => buddy::NEVER,
        };
        let (authorized, blocked) = match &account {
            Some(account) => (
                w.authorized
                    .get(&account.to_ascii_lowercase())
                    .is_some_and(|set| set.contains(&handle.to_ascii_lowercase())),
                w.blocks(account, handle),
            ),
            None => (false, false),
        };
        Reply::User {
            handle: handle.to_string(),
            display_name: accounts::display_name(handle),
            online: !matches!(
                status,
                OnlineStatus::Offline | OnlineStatus::Unknown | OnlineStatus::Invisible
            ),
            status: status.as_str().to_string(),
            buddy,
            authorized,
            blocked,
        }
    }

    /// `SEARCH FRIENDS`: the account's added contacts, in name order.
    pub fn friends(&self, session: u64) -> Reply {
        let mut w = self.world();
        let Some(account) = w.sessions.get(&session).map(|s| s.user.clone()) else {
            return not_online();
        };
        let handles = w
            .contacts_of(&account)
            .iter()
            .filter(|(_, b)| **b == buddy::ADDED)
            .map(|(h, _)| h.clone())
            .collect();
        Reply::Friends { handles }
    }

    /// `SET USER <handle> BUDDYSTATUS <status> [text]`: 1 removes the contact; 2 asks to add it
    /// (pending until the party authorizes, which an account does with `SET USER ...
    /// ISAUTHORIZED TRUE` and `ctl contact` does for a remote person).
    pub fn set_buddy(&self, session: u64, handle: &str, status: u8, text: &str) -> Reply {
        let mut w = self.world();
        let Some(account) = w.sessions.get(&session).map(|s| s.user.clone()) else {
            return not_online();
        };
        let Some(handle) = accounts::canonical(handle) else {
            return Reply::Error {
                line: "ERROR 26 Invalid user handle".into(),
            };
        };
        let status = match status {
            buddy::DELETED => buddy::DELETED,
            buddy::PENDING => buddy::PENDING,
            _ => {
                return Reply::Error {
                    line: "ERROR 518 Invalid value".into(),
                }
            }
        };
        w.contacts_of(&account).insert(handle.clone(), status);
        let change = Down::BuddyStatus {
            handle: handle.clone(),
            status,
        };
        for other in w.sessions_of(&account) {
            if other != session {
                w.send(other, &change);
            }
        }
        if status == buddy::PENDING
            && accounts::account(&handle).is_some()
            && !w.blocks(&handle, &account)
        {
            let request = Down::AuthRequest {
                from: account.clone(),
                text: text.to_string(),
            };
            if w.sessions_of(&handle).is_empty() {
                w.pending_auth
                    .entry(handle.clone())
                    .or_default()
                    .push((account, text.to_string()));
            } else {
                w.tell_account(&handle, &request);
            }
        }
        Reply::Ok
    }

    /// `ctl presence`: a remote person's (or bot's) status changes.
    pub fn ctl_presence(&self, party: &str, status: &str) -> Result<Value, String> {
        let status = OnlineStatus::parse(status).ok_or_else(|| {
            format!(
                "unknown status {status:?}; one of {}",
                OnlineStatus::ALL.map(OnlineStatus::as_str).join(", ")
            )
        })?;
        let handle = match accounts::identify(party) {
            Some(Identity::Remote | Identity::Bot(_)) => party.to_ascii_lowercase(),
            Some(_) => return Err(format!("{party} is not a remote party or a bot")),
            None => return Err(format!("unknown party {party}")),
        };
        let mut w = self.world();
        let before = w.status_of(&handle);
        w.statuses.insert(handle.clone(), status);
        let seen = w.status_of(&handle);
        let mut told = 0;
        w.release_waiting(&handle);
        if seen != before {
            let change = Down::UserStatus {
                handle: handle.clone(),
                status: seen.as_str().to_string(),
            };
            for account in w.watchers_of(&handle) {
                told += w.sessions_of(&account).len();
                w.tell_account(&account, &change);
            }
        }
        info!(party = %handle, status = seen.as_str(), told, "presence changed");
        Ok(json!({"party": handle, "status": seen.as_str(), "told": told}))
    }

    /// `ctl contact`: `handle` becomes an authorized contact of `user`, or leaves the list.
    pub fn ctl_contact(&self, user: &str, handle: &str, add: bool) -> Result<Value, String> {
        let user = accounts::account(user)
            .map(|a| a.handle.into_owned())
            .ok_or_else(|| format!("unknown account {user}"))?;
        let handle =
            accounts::canonical(handle).ok_or_else(|| format!("unknown party {handle}"))?;
        let status = if add { buddy::ADDED } else { buddy::DELETED };
        let mut w = self.world();
        w.contacts_of(&user).insert(handle.clone(), status);
        w.tell_account(
            &user,
            &Down::BuddyStatus {
                handle: handle.clone(),
                status,
            },
        );
        if add {
            let seen = w.status_of(&handle);
            w.tell_account(
                &user,
                &Down::UserStatus {
                    handle: handle.clone(),
                    status: seen.as_str().to_string(),
                },
            );
        }
        Ok(json!({"user": user, "handle": handle, "buddystatus": status}))
    }
}
