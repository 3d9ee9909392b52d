//! `sk contacts <interface>` (a table for people) and `skypopen_contacts <interface>` (JSON for
//! scripts).

use super::Contact;
use serde_json::json;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

fn unix(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub fn render_table(interface: &str, skype_user: &str, contacts: &[Contact]) -> String {
    let mut out = format!(
        "Contacts of {interface} ({skype_user}): {}\nhandle\tstatus\tsince\tname\n",
        contacts.len()
    );
    let now = SystemTime::now();
    for c in contacts {
        let ago = now.duration_since(c.since).map_or(0, |d| d.as_secs());
        let _ = writeln!(
            out,
            "{}\t{}\t{}s ago\t{}",
            c.handle, c.status, ago, c.display_name
        );
    }
    out
}

pub fn render_json(interface: &str, skype_user: &str, contacts: &[Contact]) -> String {
    let value = json!({
        "interface": interface,
        "skype_user": skype_user,
        "contacts": contacts.iter().map(|c| json!({
            "handle": c.handle,
            "display_name": c.display_name,
            "status": c.status,
            "buddystatus": c.buddy,
            "since": unix(c.since),
        })).collect::<Vec<_>>(),
    });
    format!("{value}\n")
}
