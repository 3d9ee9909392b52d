//! What one listener connection asked to receive: `event` / `nixevent` / `noevents` and
//! `filter`, with FreeSWITCH's semantics (see the s1d capture: after `CUSTOM`, every word is
//! a subclass name).

use crate::switch::esl::names::{canonical_event_name, ALL, CUSTOM};
use crate::switch::esl::{Event, EventFormat};
use std::collections::HashSet;

#[derive(Debug, Default)]
pub struct Subscription {
    format: EventFormat,
    all: bool,
    /// Subclassed CUSTOM events are delivered without naming each subclass (after `ALL`).
    all_custom: bool,
    types: HashSet<&'static str>,
    subclasses: HashSet<String>,
}

/// Reply texts, exactly as FreeSWITCH words them.
pub const NO_KEYWORDS: &str = "-ERR no keywords supplied";

impl Subscription {
    pub fn format(&self) -> EventFormat {
        self.format
    }

    pub fn is_listening(&self) -> bool {
        self.all || self.all_custom || !self.types.is_empty() || !self.subclasses.is_empty()
    }

    /// `event [plain|json|xml] <names...>`: returns the reply text. The format word alone
    /// still changes the format, though the reply is an error (as in FreeSWITCH).
    pub fn subscribe(&mut self, args: &str) -> String {
        let mut keywords = 0;
        let mut custom = false;
        for (index, word) in args.split(' ').filter(|word| !word.is_empty()).enumerate() {
            if index == 0 {
                if let Some(format) = EventFormat::parse(word) {
                    self.format = format;
                    continue;
                }
            }
            if custom {
                self.subclasses.insert(word.to_string());
                continue;
            }
            let Some(name) = canonical_event_name(word) else {
                continue;
            };
            keywords += 1;
            if name == ALL {
                self.all = true;
                self.all_custom = true;
            } else {
                self.types.insert(name);
            }
            if name == CUSTOM {
                custom = true;
            }
        }
        if keywords == 0 {
            return NO_KEYWORDS.to_string();
        }
        format!("+OK event listener enabled {}", self.format.as_str())
    }

    /// `nixevent <names...>`. Removing one type after `ALL` leaves every other type.
    pub fn unsubscribe(&mut self, args: &str) -> String {
        let mut keywords = 0;
        let mut custom = false;
        for word in args.split(' ').filter(|word| !word.is_empty()) {
            if custom {
                self.subclasses.remove(word);
                continue;
            }
            let Some(name) = canonical_event_name(word) else {
                continue;
            };
            keywords += 1;
            if name == ALL {
                self.all = false;
                self.all_custom = false;
                self.types.clear();
                continue;
            }
            if self.all {
                self.all = false;
                self.types = known_types().collect();
            }
            self.types.remove(name);
            if name == CUSTOM {
                custom = true;
                self.all_custom = false;
            }
        }
        if keywords == 0 {
            return NO_KEYWORDS.to_string();
        }
        "+OK events nixed".to_string()
    }

    /// `noevents`: drops every subscription, keeps the format.
    pub fn clear(&mut self) -> String {
        if !self.is_listening() {
            return "-ERR not listening for events".to_string();
        }
        self.all = false;
        self.all_custom = false;
        self.types.clear();
        self.subclasses.clear();
        "+OK no longer listening for events".to_string()
    }

    pub fn wants(&self, event: &Event) -> bool {
        if self.all {
            return true;
        }
        let Some(name) = event.name() else {
            return false;
        };
        if name == CUSTOM {
            return match event.subclass() {
                Some(subclass) => self.all_custom || self.subclasses.contains(subclass),
                None => self.types.contains(CUSTOM),
            };
        }
        self.types.contains(name)
    }
}

fn known_types() -> impl Iterator<Item = &'static str> {
    crate::switch::esl::names::all_event_names()
        .iter()
        .copied()
        .filter(|name| *name != ALL)
}

/// `filter` entries of one connection.
#[derive(Debug, Default)]
pub struct Filters {
    entries: Vec<Filter>,
}

#[derive(Debug)]
struct Filter {
    header: String,
    value: String,
    rule: Rule,
}

#[derive(Debug)]
enum Rule {
    Equals {
        text: String,
        negative: bool,
    },
    Regex {
        regex: regex_lite::Regex,
        negative: bool,
    },
}

impl Rule {
    fn parse(value: &str) -> Rule {
        let (negative, text) = match value.as_bytes().first() {
            Some(b'-') => (true, &value[1..]),
            Some(b'+') => (false, &value[1..]),
            _ => (false, value),
        };
        if let Some(pattern) = text
            .strip_prefix('/')
            .and_then(|rest| rest.rsplit_once('/'))
        {
            let (pattern, flags) = pattern;
            let pattern = if flags.contains('i') {
                format!("(?i){pattern}")
            } else {
                pattern.to_string()
            };
            // A bad pattern is compared literally rather than rejected, so a filter never
            // silently matches everything.
            if let Ok(regex) = regex_lite::RegexBuilder::new(&pattern)
                .size_limit(1 << 20)
                .build()
            {
                return Rule::Regex { regex, negative };
            }
        }
        Rule::Equals {
            text: text.to_string(),
            negative,
        }
    }

    fn negative(&self) -> bool {
        match self {
            Rule::Equals { negative, .. } | Rule::Regex { negative, .. } => *negative,
        }
    }

    fn matches(&self, value: &str) -> bool {
        match self {
            Rule::Equals { text, .. } => text.eq_ignore_ascii_case(value),
            Rule::Regex { regex, .. } => regex.is_match(value),
        }
    }
}

/// At most this many filters per connection: each is checked against every event.
pub const MAX_FILTERS: usize = 256;

impl Filters {
    /// `filter <Header> <value>`, `filter add ...`, `filter delete <Header> [<value>]`,
    /// `filter delete all`: returns the reply text.
    pub fn command(&mut self, args: &str) -> String {
        let Some((first, rest)) = args.split_once(' ') else {
            return "-ERR invalid syntax".to_string();
        };
        if first.eq_ignore_ascii_case("delete") {
            let (header, value) = match rest.split_once(' ') {
                Some((header, value)) => (header, Some(value)),
                None => (rest, None),
            };
            if header.eq_ignore_ascii_case("all") {
                self.entries.clear();
            } else {
                self.entries.retain(|filter| {
                    !(filter.header.eq_ignore_ascii_case(header)
                        && value.is_none_or(|value| filter.value == value))
                });
            }
            return format!("+OK filter deleted. [{header}][{}]", value.unwrap_or(""));
        }
        let (header, value) = if first.eq_ignore_ascii_case("add") {
            match rest.split_once(' ') {
                Some(pair) => pair,
                None => return "-ERR invalid syntax".to_string(),
            }
        } else {
            (first, rest)
        };
        if self.entries.len() >= MAX_FILTERS {
            return "-ERR too many filters".to_string();
        }
        self.entries.push(Filter {
            header: header.to_string(),
            value: value.to_string(),
            rule: Rule::parse(value),
        });
        format!("+OK filter added. [{header}]=[{value}]")
    }

    /// With no filters everything passes; otherwise an event needs a matching positive
    /// filter and no matching negative one.
    pub fn pass(&self, event: &Event) -> bool {
        if self.entries.is_empty() {
            return true;
        }
        let mut positive = false;
        for filter in &self.entries {
            let Some(value) = event.header(&filter.header) else {
                continue;
            };
            if filter.rule.matches(value) {
                if filter.rule.negative() {
                    return false;
                }
                positive = true;
            }
        }
        positive
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str) -> Event {
        Event::new().with_header("Event-Name", name)
    }

    fn custom(subclass: &str) -> Event {
        Event::new()
            .with_header("Event-Subclass", subclass)
            .with_header("Event-Name", "CUSTOM")
    }

    #[test]
    fn words_after_custom_are_subclasses_as_in_s1d() {
        let mut subscription = Subscription::default();
        let reply = subscription.subscribe(
            "plain CHANNEL_CREATE CHANNEL_ANSWER CHANNEL_HANGUP CHANNEL_HANGUP_COMPLETE DTMF CUSTOM skypopen::command MESSAGE BACKGROUND_JOB",
        );
        assert_eq!(reply, "+OK event listener enabled plain");
        assert!(subscription.wants(&custom("skypopen::command")));
        assert!(subscription.wants(&event("DTMF")));
        assert!(!subscription.wants(&event("MESSAGE")));
        assert!(!subscription.wants(&event("BACKGROUND_JOB")));
        assert!(!subscription.wants(&custom("other::thing")));
    }

    #[test]
    fn custom_alone_only_gets_custom_without_subclass() {
        let mut subscription = Subscription::default();
        subscription.subscribe("plain CUSTOM");
        assert!(subscription.wants(&event("CUSTOM")));
        assert!(!subscription.wants(&custom("a::b")));
    }

    #[test]
    fn format_word_and_errors() {
        let mut subscription = Subscription::default();
        assert_eq!(subscription.subscribe("json"), NO_KEYWORDS);
        assert_eq!(subscription.format(), EventFormat::Json);
        assert_eq!(subscription.subscribe("json NOT_AN_EVENT"), NO_KEYWORDS);
        assert_eq!(
            subscription.subscribe("message"),
            "+OK event listener enabled json"
        );
        assert!(subscription.wants(&event("MESSAGE")));
    }

    #[test]
    fn nixevent_after_all_keeps_the_rest() {
        let mut subscription = Subscription::default();
        subscription.subscribe("plain ALL");
        assert!(subscription.wants(&custom("x::y")));
        assert_eq!(subscription.unsubscribe("DTMF"), "+OK events nixed");
        assert!(!subscription.wants(&event("DTMF")));
        assert!(subscription.wants(&event("MESSAGE")));
        assert!(subscription.wants(&custom("x::y")));
        assert_eq!(subscription.unsubscribe("nothing"), NO_KEYWORDS);
        assert_eq!(subscription.clear(), "+OK no longer listening for events");
        assert_eq!(subscription.clear(), "-ERR not listening for events");
        assert!(!subscription.wants(&event("MESSAGE")));
    }

    #[test]
    fn filters_follow_freeswitch_semantics() {
        let mut filters = Filters::default();
        let a = event("MESSAGE").with_header("Unique-ID", "A");
        let b = event("MESSAGE").with_header("Unique-ID", "B");
        let none = event("MESSAGE");
        assert!(filters.pass(&a) && filters.pass(&none));
        assert_eq!(
            filters.command("Unique-ID A"),
            "+OK filter added. [Unique-ID]=[A]"
        );
        assert!(filters.pass(&a));
        assert!(!filters.pass(&b));
        assert!(!filters.pass(&none));
        assert_eq!(
            filters.command("add Unique-ID /^b$/i"),
            "+OK filter added. [Unique-ID]=[/^b$/i]"
        );
        assert!(filters.pass(&b));
        assert_eq!(
            filters.command("Event-Name -MESSAGE"),
            "+OK filter added. [Event-Name]=[-MESSAGE]"
        );
        assert!(!filters.pass(&a));
        assert_eq!(
            filters.command("delete Event-Name"),
            "+OK filter deleted. [Event-Name][]"
        );
        assert!(filters.pass(&a));
        assert_eq!(
            filters.command("delete Unique-ID A"),
            "+OK filter deleted. [Unique-ID][A]"
        );
        assert!(!filters.pass(&a));
        assert_eq!(filters.command("delete all"), "+OK filter deleted. [all][]");
        assert!(filters.pass(&a));
        assert_eq!(filters.command("Unique-ID"), "-ERR invalid syntax");
    }
}
