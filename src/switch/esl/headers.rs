//! An ordered list of `Name: value` pairs. Duplicates are allowed and keep their place,
//! because FreeSWITCH's events carry them (two `Content-Length` lines after `sendevent`).

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(String, String)>,
}

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(capacity: usize) -> Self {
        Headers {
            entries: Vec::with_capacity(capacity),
        }
    }

    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.entries.push((name.into(), value.into()));
    }

    /// The first value under `name`, compared case-insensitively (FreeSWITCH's lookup).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The last value under `name`: the one that counts for a repeated `Content-Length`.
    pub fn get_last(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Replaces the first value under `name`, or appends it.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        match self
            .entries
            .iter_mut()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
        {
            Some(entry) => entry.1 = value.into(),
            None => self.entries.push((name.to_string(), value.into())),
        }
    }

    /// Removes every value under `name`; returns how many there were.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.entries.len();
        self.entries
            .retain(|(key, _)| !key.eq_ignore_ascii_case(name));
        before - self.entries.len()
    }

    pub fn pop(&mut self) -> Option<(String, String)> {
        self.entries.pop()
    }

    pub fn last(&self) -> Option<(&str, &str)> {
        self.entries
            .last()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.entries
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Headers {
    fn from_iter<T: IntoIterator<Item = (N, V)>>(iter: T) -> Self {
        Headers {
            entries: iter
                .into_iter()
                .map(|(name, value)| (name.into(), value.into()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_case_insensitive_and_keeps_duplicates() {
        let mut headers = Headers::new();
        headers.push("Content-Length", "1");
        headers.push("Event-Name", "MESSAGE");
        headers.push("content-length", "2");
        assert_eq!(headers.get("CONTENT-LENGTH"), Some("1"));
        assert_eq!(headers.get_last("Content-Length"), Some("2"));
        assert_eq!(headers.len(), 3);
        headers.set("event-name", "CUSTOM");
        assert_eq!(headers.get("Event-Name"), Some("CUSTOM"));
        assert_eq!(headers.remove("Content-Length"), 2);
        assert_eq!(headers.len(), 1);
    }
}
