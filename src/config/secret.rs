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
pub(super) const DEFAULT_PASSWORD: &str = "ClueCon";

/// Precedence: a file, then the environment variable `env_name`, then the inline value, then
/// FreeSWITCH's default. The environment beats the inline value because the shipped
/// configuration writes `password = "ClueCon"` inline: an operator who exports the variable
/// must not be left with the stock password. A file's trailing newline is not part of it.
pub(super) fn resolve(
    inline: Option<Secret>,
    file: Option<&Path>,
    env_name: &str,
) -> Result<Secret, ConfigError> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::SecretFile {
            path: path.to_path_buf(),
            reason: source,
        })?;
        return Ok(Secret(text.trim_end_matches(['\r', '\n']).to_string()));
    }
    if let Ok(value) = std::env::var(env_name) {
        return Ok(Secret(value));
    }
    if let Some(secret) = inline {
        return Ok(secret);
    }
    Ok(Secret(DEFAULT_PASSWORD.into()))
}

/// The environment variable that may hold a Skype account's password:
/// `SKYPOPEN_SKYPE_PASSWORD_` and the account name upper-cased, other characters as `_`.
pub fn skype_password_variable(skype_user: &str) -> String {
    let suffix: String = skype_user
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("SKYPOPEN_SKYPE_PASSWORD_{suffix}")
}

/// A file `<dir>/<account>` first, then the account's environment variable.
pub(super) fn skype_password(dir: Option<&Path>, skype_user: &str) -> Result<Secret, ConfigError> {
    let variable = skype_password_variable(skype_user);
    let safe_name = !skype_user.is_empty()
        && !skype_user.contains('/')
        && skype_user != "."
        && skype_user != "..";
    if let (Some(dir), true) = (dir, safe_name) {
        let path = dir.join(skype_user);
        match std::fs::read_to_string(&path) {
            Ok(text) => return Ok(Secret(text.trim_end_matches(['\r', '\n']).to_string())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(reason) => return Err(ConfigError::SecretFile { path, reason }),
        }
    }
    match std::env::var(&variable) {
        Ok(value) => Ok(Secret(value)),
        Err(_) => Err(ConfigError::MissingCredential {
            user: skype_user.to_string(),
            variable,
        }),
    }
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

#[cfg(test)]
mod skype_password_tests {
    use super::*;

    #[test]
    fn account_file_is_read_without_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("alice.smith"), "pw of alice\n").unwrap();
        let s = skype_password(Some(dir.path()), "alice.smith").unwrap();
        assert_eq!(s.expose(), "pw of alice");
    }

    #[test]
    fn a_missing_password_names_the_variable_to_set() {
        let dir = tempfile::tempdir().unwrap();
        let err = skype_password(Some(dir.path()), "nobody-zz9").unwrap_err();
        assert!(
            err.to_string()
                .contains("$SKYPOPEN_SKYPE_PASSWORD_NOBODY_ZZ9"),
            "{err}"
        );
    }

    #[test]
    fn account_names_cannot_escape_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), "x").unwrap();
        let sub = dir.path().join("creds");
        std::fs::create_dir(&sub).unwrap();
        assert!(skype_password(Some(&sub), "../secret").is_err());
    }
}
