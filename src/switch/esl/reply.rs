//! The messages a FreeSWITCH-compatible server writes besides events, byte for byte as
//! FreeSWITCH 1.10 writes them.

/// First thing on an accepted connection.
pub const AUTH_REQUEST: &[u8] = b"Content-Type: auth/request\n\n";
/// Body of the notice on a normal end of session (67 bytes).
pub const GOODBYE: &str = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n";
/// Body of the notice when the server stops.
pub const SHUTTING_DOWN: &str = "The system is being shut down.\n";
/// Body of the notice to a connection that did not drain its events.
pub const LOST_EVENTS: &str = "killed listener because of lost events\n";
/// Body of the notice to a connection that did not drain its log lines.
pub const LOST_LOG_LINES: &str = "killed listener because of lost log lines\n";
/// Body of `text/rude-rejection`.
pub const ACCESS_DENIED: &str = "Access Denied, go away.\n";
/// `api/response` body when a command produced nothing.
pub const NO_REPLY: &str = "-ERR no reply\n";

/// `Reply-Text` is a header line, so a reply text cannot carry line breaks; they become
/// spaces and trailing ones are dropped.
fn one_line(text: &str) -> String {
    text.trim_end_matches(['\r', '\n'])
        .replace(['\r', '\n'], " ")
}

/// `command/reply` with `Reply-Text`.
pub fn command_reply(text: &str) -> Vec<u8> {
    command_reply_with(text, &[])
}

/// `command/reply` with extra headers after `Reply-Text` (bgapi's `Job-UUID`).
pub fn command_reply_with(text: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut out = format!(
        "Content-Type: command/reply\nReply-Text: {}\n",
        one_line(text)
    );
    for (name, value) in extra {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(&one_line(value));
        out.push('\n');
    }
    out.push('\n');
    out.into_bytes()
}

/// `api/response`; an empty result is sent as [`NO_REPLY`], as FreeSWITCH does.
pub fn api_response(body: &str) -> Vec<u8> {
    let body = if body.is_empty() { NO_REPLY } else { body };
    with_body("api/response", body)
}

/// `text/disconnect-notice` with a body (use [`GOODBYE`] for a normal end).
pub fn disconnect_notice(body: &str) -> Vec<u8> {
    with_body("text/disconnect-notice", body)
}

/// `text/rude-rejection` for a client that is not allowed in.
pub fn rude_rejection() -> Vec<u8> {
    with_body("text/rude-rejection", ACCESS_DENIED)
}

/// A message of only `Content-Type` and `Content-Length` headers, then `body`.
fn with_body(content_type: &str, body: &str) -> Vec<u8> {
    let mut out = format!(
        "Content-Type: {content_type}\nContent-Length: {}\n\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// One log line for `log/data`.
#[derive(Debug, Clone, Copy)]
pub struct LogData<'a> {
    /// FreeSWITCH level 0-7 (`7` = debug).
    pub level: u8,
    /// FreeSWITCH's text channel: 0 for the log, 3 for lines tied to a session.
    pub text_channel: u8,
    pub file: &'a str,
    pub function: &'a str,
    pub line: u32,
    /// The call's channel uuid, or empty.
    pub user_data: &'a str,
    pub text: &'a str,
}

/// `log/data` with FreeSWITCH's header set; values are not encoded, so any line break in
/// them is flattened.
pub fn log_data(data: &LogData<'_>) -> Vec<u8> {
    let mut out = format!(
        "Content-Type: log/data\nContent-Length: {}\nLog-Level: {}\nText-Channel: {}\nLog-File: {}\nLog-Func: {}\nLog-Line: {}\nUser-Data: {}\n\n",
        data.text.len(),
        data.level,
        data.text_channel,
        one_line(data.file),
        one_line(data.function),
        data.line,
        one_line(data.user_data),
    )
    .into_bytes();
    out.extend_from_slice(data.text.as_bytes());
    out
}

/// The outcome an `api` command's output reports: `Ok` for `+OK ...`, else the output itself
/// (`-ERR ...`, or whatever the command printed), trimmed.
pub fn api_outcome(output: &str) -> Result<(), String> {
    if output.trim_start().starts_with("+OK") {
        Ok(())
    } else {
        Err(output.trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goodbye_is_67_bytes() {
        assert_eq!(GOODBYE.len(), 67);
        assert_eq!(
            disconnect_notice(GOODBYE),
            b"Content-Type: text/disconnect-notice\nContent-Length: 67\n\nDisconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
        );
    }

    #[test]
    fn replies_are_framed_like_freeswitch() {
        assert_eq!(
            command_reply("-ERR invalid"),
            b"Content-Type: command/reply\nReply-Text: -ERR invalid\n\n"
        );
        assert_eq!(
            command_reply_with("+OK Job-UUID: j", &[("Job-UUID", "j")]),
            b"Content-Type: command/reply\nReply-Text: +OK Job-UUID: j\nJob-UUID: j\n\n"
        );
        assert_eq!(
            api_response("-ERR foobar Command not found!\n"),
            b"Content-Type: api/response\nContent-Length: 31\n\n-ERR foobar Command not found!\n"
        );
        assert_eq!(
            api_response(""),
            b"Content-Type: api/response\nContent-Length: 14\n\n-ERR no reply\n"
        );
        assert_eq!(
            rude_rejection(),
            b"Content-Type: text/rude-rejection\nContent-Length: 24\n\nAccess Denied, go away.\n"
        );
        assert_eq!(
            command_reply("a\nb\n"),
            b"Content-Type: command/reply\nReply-Text: a b\n\n"
        );
    }

    #[test]
    fn log_data_headers() {
        let bytes = log_data(&LogData {
            level: 7,
            text_channel: 0,
            file: "skypopen::gateway",
            function: "",
            line: 0,
            user_data: "",
            text: "hello\n",
        });
        assert_eq!(
            bytes,
            b"Content-Type: log/data\nContent-Length: 6\nLog-Level: 7\nText-Channel: 0\nLog-File: skypopen::gateway\nLog-Func: \nLog-Line: 0\nUser-Data: \n\nhello\n"
        );
    }

    #[test]
    fn api_outcome_reads_ok_and_keeps_the_failure_text() {
        assert_eq!(api_outcome("+OK 3f1e\n"), Ok(()));
        assert_eq!(api_outcome("  +OK"), Ok(()));
        assert_eq!(
            api_outcome("-ERR No such channel!\n"),
            Err("-ERR No such channel!".to_string())
        );
    }
}
