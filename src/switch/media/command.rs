//! Per-call fork tokens and the `uuid_audio_fork` API lines that point FreeSWITCH at them.

use std::fmt;

/// 128 random bits, rendered as 32 lowercase hex digits. It routes a websocket to its call and
/// is the only thing that authorises it, so it is never logged in full.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ForkToken(String);

impl ForkToken {
    pub fn generate() -> ForkToken {
        // rand's thread RNG is a CSPRNG, which an unguessable token needs.
        ForkToken(format!("{:032x}", rand::random::<u128>()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first characters of a token string, enough to correlate log lines.
    pub(crate) fn shortened(token: &str) -> String {
        let head: String = token.chars().take(6).collect();
        format!("{head}…")
    }
}

impl fmt::Debug for ForkToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ForkToken({})", ForkToken::shortened(&self.0))
    }
}

impl fmt::Display for ForkToken {
    /// Shortened like `Debug`: enough to correlate log lines, useless to an attacker.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&ForkToken::shortened(&self.0))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommandError {
    #[error("{what} {value:?} cannot go into a uuid_audio_fork command (empty, or has spaces, quotes or backslashes)")]
    Unsafe { what: &'static str, value: String },
}

/// FreeSWITCH splits API arguments on spaces and processes quotes and backslashes, so none of
/// them may appear inside one argument.
fn check(what: &'static str, value: &str) -> Result<(), CommandError> {
    let bad = value.is_empty()
        || value
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '"' || c == '\\');
    if bad {
        return Err(CommandError::Unsafe {
            what,
            value: value.to_string(),
        });
    }
    Ok(())
}

/// Where in the media server's URL space the fork of one call connects: prefix, then token.
pub const FORK_PATH_PREFIX: &str = "/fork/";

/// The websocket URL FreeSWITCH connects to for this token.
pub fn fork_url(media_url: &str, token: &ForkToken) -> String {
    format!(
        "{}{}{}",
        media_url.trim_end_matches('/'),
        FORK_PATH_PREFIX,
        token.as_str()
    )
}

/// `uuid_audio_fork <uuid> start <url> mono 16k audio_fork {"call":"<token>"} true true 16000`:
/// the read stream at 16 kHz, the default bug name (so `stop_play` and a plain `stop` act on
/// it), compact metadata (a space would split it), bidirectional streaming at 16 kHz.
pub fn audio_fork_start(uuid: &str, url: &str, token: &ForkToken) -> Result<String, CommandError> {
    check("channel uuid", uuid)?;
    check("fork url", url)?;
    let metadata = serde_json::json!({ "call": token.as_str() }).to_string();
    Ok(format!(
        "uuid_audio_fork {uuid} start {url} mono 16k audio_fork {metadata} true true 16000"
    ))
}

/// `uuid_audio_fork <uuid> stop audio_fork`.
pub fn audio_fork_stop(uuid: &str) -> Result<String, CommandError> {
    check("channel uuid", uuid)?;
    Ok(format!("uuid_audio_fork {uuid} stop audio_fork"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_128_bit_hex_and_distinct() {
        let a = ForkToken::generate();
        let b = ForkToken::generate();
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(!format!("{a:?} {a}").contains(a.as_str()));
    }

    #[test]
    fn start_command_has_the_jambonz_bidirectional_shape() {
        let token = ForkToken("0123456789abcdef0123456789abcdef".into());
        let url = fork_url("ws://127.0.0.1:8086/", &token);
        assert_eq!(
            url,
            "ws://127.0.0.1:8086/fork/0123456789abcdef0123456789abcdef"
        );
        let cmd = audio_fork_start("3f1e-aa", &url, &token).unwrap();
        assert_eq!(
            cmd,
            "uuid_audio_fork 3f1e-aa start ws://127.0.0.1:8086/fork/0123456789abcdef0123456789abcdef \
             mono 16k audio_fork {\"call\":\"0123456789abcdef0123456789abcdef\"} true true 16000"
        );
        // Exactly the ten argv slots the jambonz module needs for streaming playback.
        assert_eq!(cmd.split(' ').count(), 11);
    }

    #[test]
    fn unsafe_arguments_are_refused() {
        let token = ForkToken::generate();
        assert!(audio_fork_start("a b", "ws://x/", &token).is_err());
        assert!(audio_fork_start("u", "ws://x/'", &token).is_err());
        assert!(audio_fork_start("", "ws://x/", &token).is_err());
        assert_eq!(
            audio_fork_stop("u1").unwrap(),
            "uuid_audio_fork u1 stop audio_fork"
        );
    }
}
