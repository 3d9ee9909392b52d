//! Several sidecar hosts behind one FreeSWITCH, serving the same Skype accounts. Every client
//! of an account sees the same ring and the same chat message, on every host; FreeSWITCH's
//! mod_hash, reached through each host's inbound connection, decides which host acts on each,
//! so no coordinator of our own is needed (docs/multi-host.md).
//!
//! A claim is a lease, `<host>;<expiry in Unix ms>`, stored with `insert_ifempty`. A host that
//! finds a claim whose lease ran out (its holder died before finishing) or that names itself
//! (its own claim from before a restart) takes it over with `delete_ifmatch` and a new
//! `insert_ifempty`, both atomic, so two hosts never both take one over. A finished chat is
//! marked `done;<host>` for a while, so a host that sees the message late drops it.

mod retire;

use crate::shutdown::CancellationToken;
use crate::switch::shared_hash::{HashError, HashKey};
use crate::switch::SwitchLink;
use retire::Retirements;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::{debug, warn};

/// What is claimed, each in a realm of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// An incoming Skype call, by (account, caller): it rings on every host serving the account.
    Ring,
    /// An incoming chat message, by its message key.
    Chat,
    /// A chat FreeSWITCH asked for (`chat SKYPE|...`, SEND_MESSAGE), by its event.
    Request,
}

impl Subject {
    fn realm(self) -> &'static str {
        match self {
            Subject::Ring => "skypopen_ring",
            Subject::Chat => "skypopen_chat",
            Subject::Request => "skypopen_request",
        }
    }

    /// How long a claim holds before another host may take it over: a ring rings for at
    /// most the network's ring time (60 s); a chat or request is acted on in milliseconds
    /// unless its host dies.
    fn lease(self) -> Duration {
        match self {
            Subject::Ring => Duration::from_secs(120),
            Subject::Chat | Subject::Request => Duration::from_secs(10),
        }
    }
}

/// The key of a ring's claim: the same on every host for the same (account, caller).
pub fn ring_key(account: &str, caller: &str) -> String {
    format!(
        "{}|{}",
        account.to_ascii_lowercase(),
        caller.to_ascii_lowercase()
    )
}

/// How long a `done` mark stays: a host that comes back later than this and finds the message
/// still unseen in its client delivers it again (the consumer's `skypopen_message_key` tells).
const DONE_KEPT: Duration = Duration::from_secs(600);

#[derive(Debug)]
pub enum Verdict {
    /// This host acts; `finish` or `release` the claim afterwards.
    Mine(Claim),
    /// Another host holds it.
    Theirs { holder: String },
    /// Another host already finished it.
    Done,
}

#[derive(Debug, Clone)]
pub struct Claim {
    subject: Subject,
    key: String,
    value: String,
}

pub struct Cluster {
    link: SwitchLink,
    host: String,
    arbitrate: bool,
    retirements: Retirements,
}

impl Cluster {
    pub fn new(
        link: SwitchLink,
        host: String,
        arbitrate: bool,
        cancel: CancellationToken,
    ) -> Cluster {
        let retirements = Retirements::start(link.clone(), cancel);
        Cluster {
            link,
            host,
            arbitrate,
            retirements,
        }
    }

    /// Whether claims go through FreeSWITCH (`cluster.arbitrate`). Off, every claim is
    /// this host's without asking.
    pub fn arbitrates(&self) -> bool {
        self.arbitrate
    }

    /// Claims `key` for this host.
    pub async fn claim(&self, subject: Subject, key: &str) -> Result<Verdict, HashError> {
        if !self.arbitrate {
            // Nothing is asked, stored or released: the claim needs no lease value (every
            // incoming chat passes here, so one host pays nothing for the cluster).
            return Ok(Verdict::Mine(Claim {
                subject,
                key: key.to_string(),
                value: String::new(),
            }));
        }
        let value = self.lease_value(subject);
        let mine = || {
            Verdict::Mine(Claim {
                subject,
                key: key.to_string(),
                value: value.clone(),
            })
        };
        let name = HashKey {
            realm: subject.realm(),
            key,
        };
        if self.link.hash_claim(name, &value).await? {
            return Ok(mine());
        }
        // Whoever beat us to a second try is unknown here, and does not matter.
        let someone = || Verdict::Theirs { holder: "?".into() };
        let Some(held) = self.link.hash_read(name).await? else {
            // Released between our two commands: one more try, then it is someone else's.
            return Ok(if self.link.hash_claim(name, &value).await? {
                mine()
            } else {
                someone()
            });
        };
        match Lease::parse(&held) {
            Lease::Done => Ok(Verdict::Done),
            Lease::Held { holder, until_ms } if holder != self.host && until_ms > now_ms() => {
                Ok(Verdict::Theirs { holder })
            }
            stale => {
                debug!(realm = subject.realm(), key, held = %held, ?stale, "taking over a stale claim");
                if self.link.hash_release(name, &held).await?
                    && self.link.hash_claim(name, &value).await?
                {
                    Ok(mine())
                } else {
                    Ok(someone())
                }
            }
        }
    }

    /// A claim this host makes without FreeSWITCH's word (it could not be asked), so the
    /// work still goes ahead; releasing it later is harmless.
    pub fn unclaimed(&self, subject: Subject, key: &str) -> Claim {
        Claim {
            subject,
            key: key.to_string(),
            value: self.lease_value(subject),
        }
    }

    /// The claimed work is done: other hosts that see it from now on drop it. The mark is
    /// removed after [`DONE_KEPT`].
    pub async fn finish(&self, claim: Claim) {
        if !self.arbitrate {
            return;
        }
        let done = format!("done;{}", self.host);
        let name = HashKey {
            realm: claim.subject.realm(),
            key: &claim.key,
        };
        match self.link.hash_store(name, &done).await {
            Ok(()) => self
                .retirements
                .add(claim.subject.realm(), claim.key, done, DONE_KEPT),
            Err(e) => warn!(realm = claim.subject.realm(), key = %claim.key, error = %e,
                            "cannot mark a claim done; its lease runs out instead"),
        }
    }

    /// Gives the claim up (the ring is over): the key is free again.
    pub async fn release(&self, claim: Claim) {
        if !self.arbitrate {
            return;
        }
        let name = HashKey {
            realm: claim.subject.realm(),
            key: &claim.key,
        };
        if let Err(e) = self.link.hash_release(name, &claim.value).await {
            debug!(realm = claim.subject.realm(), key = %claim.key, error = %e,
                   "cannot release a claim; its lease runs out instead");
        }
    }

    fn lease_value(&self, subject: Subject) -> String {
        let until = now_ms() + subject.lease().as_millis() as u64;
        format!("{};{until}", self.host)
    }
}

/// A claim's value as stored.
#[derive(Debug, PartialEq, Eq)]
enum Lease {
    Held {
        holder: String,
        until_ms: u64,
    },
    Done,
    /// Not ours to read (written by something else): treated as stale.
    Unknown,
}

impl Lease {
    fn parse(value: &str) -> Lease {
        if value.starts_with("done;") {
            return Lease::Done;
        }
        match value.split_once(';') {
            Some((holder, until)) => match until.trim().parse() {
                Ok(until_ms) => Lease::Held {
                    holder: holder.to_string(),
                    until_ms,
                },
                Err(_) => Lease::Unknown,
            },
            None => Lease::Unknown,
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_values_read_back() {
        assert_eq!(
            Lease::parse("box-a;1795379128000"),
            Lease::Held {
                holder: "box-a".into(),
                until_ms: 1_795_379_128_000
            }
        );
        assert_eq!(Lease::parse("done;box-b"), Lease::Done);
        assert_eq!(Lease::parse("garbage"), Lease::Unknown);
        assert_eq!(Lease::parse("box-a;soon"), Lease::Unknown);
    }
}
