//! FreeSWITCH's mod_hash as the register several sidecars share: typed `hash` commands on the
//! inbound link. Each command runs under mod_hash's write lock, so `insert_ifempty` is an
//! atomic claim and `delete_ifmatch` an atomic compare-and-delete; that is all the sidecars
//! need to agree on who acts, with no coordinator of their own.

use super::inbound::InboundError;
use super::link::SwitchLink;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error(transparent)]
    Link(#[from] InboundError),
    /// What `hash` answered was none of mod_hash's replies: most likely mod_hash is not
    /// loaded (`-ERR hash Command not found!`).
    #[error("mod_hash answered {0:?} (is mod_hash loaded?)")]
    Unexpected(String),
    #[error("{what} {value:?} cannot be used with mod_hash: no '/', spaces or line breaks")]
    Invalid { what: &'static str, value: String },
}

impl HashError {
    /// FreeSWITCH cannot be asked now; the same command may succeed later.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, HashError::Link(_))
    }
}

/// A name in mod_hash: `realm` and `key` end up as `<realm>_<key>`.
#[derive(Debug, Clone, Copy)]
pub struct HashKey<'a> {
    pub realm: &'a str,
    pub key: &'a str,
}

impl HashKey<'_> {
    fn path(&self) -> Result<String, HashError> {
        for (what, value) in [("realm", self.realm), ("key", self.key)] {
            if value.is_empty() || value.contains(['/', ' ', '\t', '\r', '\n', '\0']) {
                return Err(HashError::Invalid {
                    what,
                    value: value.to_string(),
                });
            }
        }
        Ok(format!("{}/{}", self.realm, self.key))
    }
}

fn check_value(value: &str) -> Result<(), HashError> {
    // The value is the last of at most four `/` parts, so a `/` would survive; spaces do too,
    // but line breaks would end the command.
    if value.is_empty() || value.contains(['\r', '\n', '\0']) {
        return Err(HashError::Invalid {
            what: "value",
            value: value.to_string(),
        });
    }
    Ok(())
}

impl SwitchLink {
    /// `hash insert_ifempty/...`: true when this call stored `value`, false when the key was
    /// taken already.
    pub async fn hash_claim(&self, key: HashKey<'_>, value: &str) -> Result<bool, HashError> {
        check_value(value)?;
        let output = self
            .api_text(&format!("hash insert_ifempty/{}/{value}", key.path()?))
            .await?;
        match output.trim() {
            "+OK" => Ok(true),
            "-ERR key already exists" => Ok(false),
            other => Err(HashError::Unexpected(other.to_string())),
        }
    }

    /// `hash insert/...`: stores `value`, replacing what was there.
    pub async fn hash_store(&self, key: HashKey<'_>, value: &str) -> Result<(), HashError> {
        check_value(value)?;
        let output = self
            .api_text(&format!("hash insert/{}/{value}", key.path()?))
            .await?;
        match output.trim() {
            "+OK" => Ok(()),
            other => Err(HashError::Unexpected(other.to_string())),
        }
    }

    /// `hash delete_ifmatch/...`: true when the key held `value` and is gone now.
    pub async fn hash_release(&self, key: HashKey<'_>, value: &str) -> Result<bool, HashError> {
        check_value(value)?;
        let output = self
            .api_text(&format!("hash delete_ifmatch/{}/{value}", key.path()?))
            .await?;
        match output.trim() {
            "+OK" => Ok(true),
            "-ERR Doesn't match" | "-ERR Not found" => Ok(false),
            other => Err(HashError::Unexpected(other.to_string())),
        }
    }

    /// `hash select/...`: the value, `None` when the key is not there.
    pub async fn hash_read(&self, key: HashKey<'_>) -> Result<Option<String>, HashError> {
        let output = self
            .api_text(&format!("hash select/{}", key.path()?))
            .await?;
        if output.starts_with("-ERR") {
            return Err(HashError::Unexpected(output.trim().to_string()));
        }
        // mod_hash writes the value as it is, with no line end; empty means absent.
        Ok(Some(output).filter(|v| !v.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_would_change_the_command_are_refused() {
        for (realm, key) in [
            ("r", "a/b"),
            ("r", "a b"),
            ("r/x", "k"),
            ("", "k"),
            ("r", "k\n"),
        ] {
            assert!(matches!(
                HashKey { realm, key }.path(),
                Err(HashError::Invalid { .. })
            ));
        }
        assert_eq!(
            HashKey {
                realm: "skypopen_ring",
                key: "user1|+15551234"
            }
            .path()
            .unwrap(),
            "skypopen_ring/user1|+15551234"
        );
        assert!(check_value("box-a;1795379128000").is_ok());
        assert!(check_value("a\nb").is_err());
    }
}
