//! Who exists on the emulated network: the accounts clients log in as, the remote people
//! tests play through `ctl`, the service bots, and SkypeOut numbers.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};

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

/// An account with its SkypeOut credit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub handle: Cow<'static, str>,
    pub display_name: Cow<'static, str>,
    /// Hundredths of the currency, as `PROFILE PSTN_BALANCE` reports it.
    pub balance: i64,
    pub currency: &'static str,
}

/// How many `userN` accounts exist: the eight built-in ones by default; a network started
/// with `--accounts N` has `user9` … `userN` too (for hundreds of interfaces), each
/// "User N" with 10.00 EUR of credit.
static ACCOUNT_COUNT: AtomicUsize = AtomicUsize::new(BUILT_IN_COUNT);
const BUILT_IN_COUNT: usize = 8;
/// The most accounts a network may have.
pub const MAX_ACCOUNTS: usize = 100_000;

/// Sets the number of `userN` accounts (at least the built-in eight, at most
/// [`MAX_ACCOUNTS`]); returns the number in effect.
pub fn set_account_count(count: usize) -> usize {
    let count = count.clamp(BUILT_IN_COUNT, MAX_ACCOUNTS);
    ACCOUNT_COUNT.store(count, Ordering::Relaxed);
    count
}

pub fn account_count() -> usize {
    ACCOUNT_COUNT.load(Ordering::Relaxed)
}

const fn built_in(
    handle: &'static str,
    display_name: &'static str,
    balance: i64,
    currency: &'static str,
) -> Account {
    Account {
        handle: Cow::Borrowed(handle),
        display_name: Cow::Borrowed(display_name),
        balance,
        currency,
    }
}

const BUILT_IN: [Account; BUILT_IN_COUNT] = [
    built_in("user1", "User One", 1000, "EUR"),
    built_in("user2", "User Two", 2550, "EUR"),
    built_in("user3", "User Three", 500, "USD"),
    built_in("user4", "User Four", 1234, "GBP"),
    built_in("user5", "User Five", 99, "EUR"),
    built_in("user6", "User Six", 10000, "USD"),
    built_in("user7", "User Seven", 700, "JPY"),
    built_in("user8", "User Eight", 0, "EUR"),
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

pub fn account(handle: &str) -> Option<Account> {
    account_among(handle, account_count())
}

/// Whether `handle` names an account on a network with as many accounts as it may have: what
/// a client can check before the network it logs in to says how many there are.
pub fn is_account_name(handle: &str) -> bool {
    account_among(handle, MAX_ACCOUNTS).is_some()
}

/// `handle`'s account when the network has `count` of them.
fn account_among(handle: &str, count: usize) -> Option<Account> {
    // `get` refuses a cut inside a character, so the slice after it is safe.
    let digits = handle
        .get(..4)
        .filter(|prefix| prefix.eq_ignore_ascii_case("user"))
        .map(|_| &handle[4..])?;
    if digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number: usize = digits.parse().ok()?;
    if number == 0 || number > count {
        return None;
    }
    Some(match BUILT_IN.get(number - 1) {
        Some(account) => account.clone(),
        None => Account {
            handle: Cow::Owned(format!("user{number}")),
            display_name: Cow::Owned(format!("User {number}")),
            balance: 1000,
            currency: "EUR",
        },
    })
}

/// Every account, `user1` first.
pub fn accounts() -> impl Iterator<Item = Account> {
    (1..=account_count()).filter_map(|n| account(&format!("user{n}")))
}

/// A SkypeOut number: `+` then 3 to 15 digits.
pub fn is_pstn(name: &str) -> bool {
    name.strip_prefix('+')
        .is_some_and(|d| (3..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

/// The crowd: `crowd1` .. `crowd100000`, remote people for load tests of contacts and
/// presence (`ctl crowd`), every one with a display name built to break what carries it.
pub const CROWD_MAX: usize = 100_000;

/// `n` of `crowd<n>`.
pub fn crowd_member(name: &str) -> Option<usize> {
    let digits = name
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case("crowd"))
        .map(|_| &name[5..])?;
    if digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|n| (1..=CROWD_MAX).contains(n))
}

/// A crowd member's display name: line breaks, `%`, commas and quotes; every 1000th is 10 KB.
fn crowd_display_name(n: usize) -> String {
    let name = format!("Crowd {n}, 100% \"real\"\r\nX-Injected: {n}, %s");
    if n % 1000 == 0 {
        format!("{name} {}", "W".repeat(10 * 1024))
    } else {
        name
    }
}

/// Classifies a name; `None` means "Unrecognised identity".
pub fn identify(name: &str) -> Option<Identity> {
    if account(name).is_some() {
        return Some(Identity::User);
    }
    if crowd_member(name).is_some() {
        return Some(Identity::Remote);
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
        return a.display_name.into_owned();
    }
    if let Some((_, d)) = REMOTES.iter().find(|(h, _)| h.eq_ignore_ascii_case(handle)) {
        return (*d).to_string();
    }
    if let Some(n) = crowd_member(handle) {
        return crowd_display_name(n);
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
    fn the_crowd_is_remote_and_badly_named() {
        assert_eq!(identify("crowd1"), Some(Identity::Remote));
        assert_eq!(identify("crowd100000"), Some(Identity::Remote));
        assert_eq!(identify("crowd0"), None);
        assert_eq!(identify("crowd01"), None);
        assert_eq!(identify("crowd100001"), None);
        assert!(display_name("crowd7").contains("\r\n"));
        assert!(display_name("crowd2000").len() > 10 * 1024);
    }

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
    fn more_accounts_can_be_made_and_are_named_plainly() {
        // The process-wide count is left alone: other tests read it at the same time.
        assert_eq!(account_among("user0", 300), None);
        assert_eq!(account_among("user01", 300), None);
        assert_eq!(account_among("user+1", 300), None);
        let a = account_among("USER250", 300).expect("user250 exists");
        assert_eq!(
            (a.handle.as_ref(), a.display_name.as_ref()),
            ("user250", "User 250")
        );
        assert_eq!(account_among("user301", 300), None);
        assert_eq!(account_among("user9", 8), None);
        assert_eq!(account_among("user3", 300).map(|a| a.balance), Some(500));
        assert!(is_account_name("user250") && !is_account_name("user0"));
    }

    #[test]
    fn only_user8_has_no_credit() {
        for a in BUILT_IN {
            assert_eq!(a.balance == 0, a.handle == "user8");
        }
        assert!(display_name("bob").contains(' '));
    }
}
