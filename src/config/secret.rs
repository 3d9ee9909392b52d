//! Secrets (ESL passwords) that never show up in logs, `Debug` output or `sk` replies.

use super::ConfigError;
use serde::Deserialize;
use std::path::Path;

/// A password. `Debug` and `Display` print a placeholder; use [`Secret::expose`] at the one
/// place that must send it on the wire.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// FreeSWITCH's stock password, used when nothing else is configured.
const DEFAULT_PASSWORD: &str = "ClueCon";

/// Precedence: a file, then the inline value, then the environment variable `env_name`, then
/// FreeSWITCH's default. A file's trailing newline is not part of the secret.
pub(super) fn resolve(
    inline: Option<Secret>,
    file: Option<&Path>,
    env_name: &str,
) -> Result<Secret, ConfigError> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::SecretFile {
            path: path.to_path_buf(),
            source,
        })?;
        return Ok(Secret(text.trim_end_matches(['\r', '\n']).to_string()));
    }
    if let Some(secret) = inline {
        return Ok(secret);
    }
    if let Ok(value) = std::env::var(env_name) {
        return Ok(Secret(value));
    }
    Ok(Secret(DEFAULT_PASSWORD.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_value() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn file_wins_and_loses_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        let s = resolve(
            Some(Secret::new("inline")),
            Some(&path),
            "SKYPOPEN_TEST_NOPE",
        )
        .unwrap();
        assert_eq!(s.expose(), "s3cret");
    }
}
