//! Who exists on the emulated network: the accounts clients log in as, the remote people
//! tests play through `ctl`, the service bots, and SkypeOut numbers.

/// What a name on the network is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// An account a `skype-sim client` logs in as.
    User,
    /// A person no client logs in as; `ctl` plays them.
    Remote,
    Bot(Bot),
    /// `+<digits>`: a SkypeOut (PSTN) number.
    Pstn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bot {
    /// Returns what it hears after a short delay (the Echo / Sound Test Service).
    Echo,
    /// Returns every frame at once (latency benchmarks).
    InstantEcho,
    /// Answers BUSY.
    Busy,
    /// Answers REFUSED.
    Refuse,
    /// Rings until MISSED.
    Silent,
    /// Rings, then fails with FAILUREREASON 6 (no common codec): a failure the gateway has no
    /// closer cause for than NORMAL_TEMPORARY_FAILURE.
    Fail,
}

/// A built-in account with its SkypeOut credit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub handle: &'static str,
    pub display_name: &'static str,
    /// Hundredths of the currency, as `PROFILE PSTN_BALANCE` reports it.
    pub balance: i64,
    pub currency: &'static str,
}

const ACCOUNTS: [Account; 8] = [
    Account {
        handle: "user1",
        display_name: "User One",
        balance: 1000,
        currency: "EUR",
    },
    Account {
        handle: "user2",
        display_name: "User Two",
        balance: 2550,
        currency: "EUR",
    },
    Account {
        handle: "user3",
        display_name: "User Three",
        balance: 500,
        currency: "USD",
    },
    Account {
        handle: "user4",
        display_name: "User Four",
        balance: 1234,
        currency: "GBP",
    },
    Account {
        handle: "user5",
        display_name: "User Five",
        balance: 99,
        currency: "EUR",
    },
    Account {
        handle: "user6",
        display_name: "User Six",
        balance: 10000,
        currency: "USD",
    },
    Account {
        handle: "user7",
        display_name: "User Seven",
        balance: 700,
        currency: "JPY",
    },
    Account {
        handle: "user8",
        display_name: "User Eight",
        balance: 0,
        currency: "EUR",
    },
];

const REMOTES: [(&str, &str); 5] = [
    ("alice", "Alice Liddell"),
    ("bob", "Bob Smith Jr"),
    ("carol", "Carol Ann Jones"),
    ("dave", "Dave"),
    // A display name written to break out of a FreeSWITCH variable block.
    ("mallory", "x',api_on_answer=system touch /tmp/p,y='"),
];

const BOTS: [(&str, &str, Bot); 6] = [
    ("echo123", "Echo / Sound Test Service", Bot::Echo),
    ("instantecho", "Instant Echo", Bot::InstantEcho),
    ("busybot", "Busy Bot", Bot::Busy),
    ("refusebot", "Refuse Bot", Bot::Refuse),
    ("silentbot", "Silent Bot", Bot::Silent),
    ("failbot", "Fail Bot", Bot::Fail),
];

pub fn account(handle: &str) -> Option<&'static Account> {
    ACCOUNTS
        .iter()
        .find(|a| a.handle.eq_ignore_ascii_case(handle))
}

pub fn accounts() -> &'static [Account] {
    &ACCOUNTS
}

/// A SkypeOut number: `+` then 3 to 15 digits.
pub fn is_pstn(name: &str) -> bool {
    name.strip_prefix('+')
        .is_some_and(|d| (3..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

/// Classifies a name; `None` means "Unrecognised identity".
pub fn identify(name: &str) -> Option<Identity> {
    if account(name).is_some() {
        return Some(Identity::User);
    }
    if REMOTES.iter().any(|(h, _)| h.eq_ignore_ascii_case(name)) {
        return Some(Identity::Remote);
    }
    if let Some((_, _, bot)) = BOTS.iter().find(|(h, _, _)| h.eq_ignore_ascii_case(name)) {
        return Some(Identity::Bot(*bot));
    }
    if is_pstn(name) {
        return Some(Identity::Pstn);
    }
    None
}

/// The canonical (lower-case) handle of a known name.
pub fn canonical(name: &str) -> Option<String> {
    identify(name).map(|id| match id {
        Identity::Pstn => name.to_string(),
        _ => name.to_ascii_lowercase(),
    })
}

/// Display name shown as `PARTNER_DISPNAME` / `FROM_DISPNAME`; numbers show as themselves.
pub fn display_name(handle: &str) -> String {
    if let Some(a) = account(handle) {
        return a.display_name.to_string();
    }
    if let Some((_, d)) = REMOTES.iter().find(|(h, _)| h.eq_ignore_ascii_case(handle)) {
        return (*d).to_string();
    }
    if let Some((_, d, _)) = BOTS.iter().find(|(h, _, _)| h.eq_ignore_ascii_case(handle)) {
        return (*d).to_string();
    }
    handle.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_classified() {
        assert_eq!(identify("user1"), Some(Identity::User));
        assert_eq!(identify("USER8"), Some(Identity::User));
        assert_eq!(identify("alice"), Some(Identity::Remote));
        assert_eq!(identify("echo123"), Some(Identity::Bot(Bot::Echo)));
        assert_eq!(identify("+390612345678"), Some(Identity::Pstn));
        assert_eq!(identify("+12"), None);
        assert_eq!(identify("+12a45"), None);
        assert_eq!(identify("nobody"), None);
        assert_eq!(identify("user9"), None);
    }

    #[test]
    fn only_user8_has_no_credit() {
        for a in accounts() {
            assert_eq!(a.balance == 0, a.handle == "user8");
        }
        assert!(display_name("bob").contains(' '));
    }
}
