//! Where a configuration key came from: a line of the TOML file, or an environment variable.
//! Operators fix problems faster when told `conf/skypopen.toml:12` or `SKYPOPEN__SWITCH__ESL`
//! than when told a dotted key alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The environment prefix of overrides; `__` separates section and key.
pub const ENV_PREFIX: &str = "SKYPOPEN__";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// Not attributed (e.g. a problem found before locations were known).
    Unknown,
    File {
        path: PathBuf,
        line: Option<usize>,
    },
    Environment {
        variable: String,
    },
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Unknown => f.write_str("?"),
            Location::File {
                path,
                line: Some(line),
            } => write!(f, "{}:{line}", path.display()),
            Location::File { path, line: None } => write!(f, "{}", path.display()),
            Location::Environment { variable } => write!(f, "environment {variable}"),
        }
    }
}

/// Maps dotted keys (`switch.esl`, `interface[1].id`, `listener.allow[0]`) to locations.
pub struct Locator {
    path: PathBuf,
    document: Option<toml_edit::ImDocument<String>>,
    /// Dotted key (lower case) -> variable name, for every `SKYPOPEN__...` variable.
    environment: BTreeMap<String, String>,
}

impl Locator {
    pub fn new(path: &Path, text: &str) -> Locator {
        Locator {
            path: path.to_path_buf(),
            document: toml_edit::ImDocument::parse(text.to_string()).ok(),
            environment: environment_keys(std::env::vars_os()),
        }
    }

    pub fn locate(&self, key: &str) -> Location {
        let segments = segments(key);
        let plain: Vec<&str> = segments
            .iter()
            .filter_map(|s| match s {
                Segment::Key(k) => Some(*k),
                Segment::Index(_) => None,
            })
            .collect();
        // An override replaces the whole value, indices included (`listener.allow`).
        for len in (1..=plain.len()).rev() {
            if let Some(variable) = self.environment.get(&plain[..len].join(".")) {
                return Location::Environment {
                    variable: variable.clone(),
                };
            }
        }
        let line = self.line(&segments);
        // A key the file does not have but a variable writes under (a misspelt section in
        // `SKYPOPEN__SWTICH__ESL`) comes from that variable.
        if line.is_none() {
            let under = format!("{}.", plain.join("."));
            if let Some((_, variable)) =
                self.environment.iter().find(|(k, _)| k.starts_with(&under))
            {
                return Location::Environment {
                    variable: variable.clone(),
                };
            }
        }
        Location::File {
            path: self.path.clone(),
            line,
        }
    }

    /// The line of the deepest part of `segments` that exists in the file.
    fn line(&self, segments: &[Segment<'_>]) -> Option<usize> {
        let document = self.document.as_ref()?;
        let text = document.raw();
        let mut item = document.as_item();
        let mut offset = None;
        for segment in segments {
            let (next, key_span) = match segment {
                Segment::Key(k) => {
                    let key_span = item
                        .as_table_like()
                        .and_then(|t| t.get_key_value(k))
                        .and_then(|(key, _)| key.span());
                    (item.get(*k), key_span)
                }
                Segment::Index(i) => (item.get(*i), None),
            };
            let Some(next) = next else { break };
            item = next;
            if let Some(start) = key_span
                .map(|s| s.start)
                .or_else(|| item.span().map(|s| s.start))
            {
                offset = Some(start);
            }
        }
        offset.map(|at| text[..at.min(text.len())].matches('\n').count() + 1)
    }
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

fn segments(key: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for part in key.split('.') {
        let (name, mut rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
        if !name.is_empty() {
            out.push(Segment::Key(name));
        }
        while let Some((index, after)) = rest.split_once(']') {
            if let Ok(i) = index.parse() {
                out.push(Segment::Index(i));
            }
            rest = after.strip_prefix('[').unwrap_or(after);
        }
    }
    out
}

/// The same key mapping the `config` crate applies: prefix stripped, lower-cased, `__` → `.`.
fn environment_keys(
    vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> BTreeMap<String, String> {
    vars.filter_map(|(name, _)| {
        let name = name.into_string().ok()?;
        let lower = name.to_lowercase();
        let rest = lower.strip_prefix(&ENV_PREFIX.to_lowercase())?;
        Some((rest.replace("__", "."), name))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[switch]\nesl = \"x\"\n\n[listener]\nallow = [\"a\",\n  \"b\"]\n\n[[interface]]\nid = 1\n\n[[interface]]\nid = 2\nname = \"two\"\n";

    fn locator(env: &[(&str, &str)]) -> Locator {
        Locator {
            path: PathBuf::from("c.toml"),
            document: toml_edit::ImDocument::parse(TEXT.to_string()).ok(),
            environment: environment_keys(env.iter().map(|(k, v)| (k.into(), v.into()))),
        }
    }

    #[test]
    fn keys_map_to_their_lines() {
        let l = locator(&[]);
        assert_eq!(l.locate("switch.esl").to_string(), "c.toml:2");
        assert_eq!(l.locate("listener.allow[1]").to_string(), "c.toml:6");
        assert_eq!(l.locate("interface[1].name").to_string(), "c.toml:13");
        assert_eq!(l.locate("interface[1].id").to_string(), "c.toml:12");
        // Missing keys point at the closest enclosing thing that exists.
        assert_eq!(l.locate("interface[0].skype_user").to_string(), "c.toml:8");
        assert_eq!(l.locate("state.dir").to_string(), "c.toml");
    }

    #[test]
    fn overrides_point_at_their_variable() {
        let l = locator(&[("SKYPOPEN__SWITCH__ESL", "y"), ("SKYPOPEN_OTHER", "z")]);
        assert_eq!(
            l.locate("switch.esl").to_string(),
            "environment SKYPOPEN__SWITCH__ESL"
        );
        assert_eq!(l.locate("switch.media").to_string(), "c.toml:1");
    }
}
