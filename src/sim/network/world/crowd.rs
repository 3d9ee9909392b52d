//! The crowd (`crowd1`..): thousands of contacts for load tests, added and moved in bulk so
//! that a test can make an account's contacts change status by the thousand in one go.

use super::*;
use crate::sim::accounts::CROWD_MAX;
use crate::sim::presence::{buddy, OnlineStatus};

impl Network {
    /// `ctl crowd`: `crowd1`..`crowd<count>` become contacts of `user`, untold.
    pub fn ctl_crowd(&self, user: &str, count: usize) -> Result<Value, String> {
        let user = accounts::account(user)
            .map(|a| a.handle.into_owned())
            .ok_or_else(|| format!("unknown account {user}"))?;
        if count > CROWD_MAX {
            return Err(format!("the crowd has {CROWD_MAX} members"));
        }
        let mut w = self.world();
        let contacts = w.contacts_of(&user);
        for n in 1..=count {
            contacts.insert(format!("crowd{n}"), buddy::ADDED);
        }
        Ok(json!({"user": user, "added": count}))
    }

    /// `ctl crowd-presence`: `crowd1`..`crowd<count>` take `status` at once; each watching
    /// account's clients hear every change, in one message.
    pub fn ctl_crowd_presence(&self, count: usize, status: &str) -> Result<Value, String> {
        let status =
            OnlineStatus::parse(status).ok_or_else(|| format!("unknown status {status:?}"))?;
        if count > CROWD_MAX {
            return Err(format!("the crowd has {CROWD_MAX} members"));
        }
        let mut w = self.world();
        let mut changes = Vec::with_capacity(count);
        for n in 1..=count {
            let handle = format!("crowd{n}");
            let before = w.status_of(&handle);
            w.statuses.insert(handle.clone(), status);
            let seen = w.status_of(&handle);
            if seen != before {
                changes.push(handle);
            }
        }
        let seen = status.as_seen().as_str().to_string();
        let accounts: HashSet<String> = w
            .sessions
            .values()
            .map(|s| s.user.to_ascii_lowercase())
            .collect();
        let mut told = 0;
        for account in accounts {
            let watched: Vec<(String, String)> = changes
                .iter()
                .filter(|h| w.contacts_of(&account).get(*h) == Some(&buddy::ADDED))
                .map(|h| (h.clone(), seen.clone()))
                .collect();
            if watched.is_empty() {
                continue;
            }
            told += watched.len();
            w.tell_account(&account, &Down::UserStatuses { changes: watched });
        }
        info!(count, status = %seen, told, "crowd presence changed");
        Ok(json!({"changed": changes.len(), "told": told}))
    }
}
