//! FreeSWITCH's URL encoding of event header values (`switch_url_encode`) and the decoding
//! every ESL client applies to them.

/// How a literal `%` followed by two uppercase hex digits is treated when encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PercentMode {
    /// Always `%25`. What the sidecar uses for the events it generates: every client decodes
    /// it back to the exact value.
    Always,
    /// Leave `%XX` (uppercase hex) as it is, as FreeSWITCH does. Lossy: `%41` decodes to `A`.
    KeepEncoded,
}

/// What FreeSWITCH prints instead of a value that encodes to nothing.
pub const UNDEF: &str = "_undef_";

const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";

fn needs_encoding(byte: u8) -> bool {
    !(0x20..=0x7e).contains(&byte)
        || matches!(
            byte,
            b' ' | b'#'
                | b'%'
                | b'&'
                | b'+'
                | b':'
                | b';'
                | b'<'
                | b'='
                | b'>'
                | b'?'
                | b'@'
                | b'['
                | b'\\'
                | b']'
                | b'^'
                | b'`'
                | b'{'
                | b'|'
                | b'}'
                | b'"'
        )
}

fn is_upper_hex(byte: u8) -> bool {
    byte.is_ascii_digit() || (b'A'..=b'F').contains(&byte)
}

/// Appends the encoded form of `value` to `out`; an empty result is written as [`UNDEF`].
pub fn url_encode_into(value: &str, mode: PercentMode, out: &mut String) {
    let bytes = value.as_bytes();
    if bytes.is_empty() {
        out.push_str(UNDEF);
        return;
    }
    out.reserve(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        let keep_escape = mode == PercentMode::KeepEncoded
            && byte == b'%'
            && bytes.len() > index + 2
            && is_upper_hex(bytes[index + 1])
            && is_upper_hex(bytes[index + 2]);
        if needs_encoding(byte) && !keep_escape {
            out.push('%');
            out.push(char::from(UPPER_HEX[usize::from(byte >> 4)]));
            out.push(char::from(UPPER_HEX[usize::from(byte & 0x0f)]));
            index += 1;
            continue;
        }
        // Runs of bytes that stay as they are are copied as one slice, so multi-byte
        // characters never reach this branch (all their bytes are > 0x7E).
        let start = index;
        index += 1;
        while index < bytes.len() && !needs_encoding(bytes[index]) {
            index += 1;
        }
        out.push_str(&value[start..index]);
    }
}

pub fn url_encode(value: &str, mode: PercentMode) -> String {
    let mut out = String::with_capacity(value.len());
    url_encode_into(value, mode, &mut out);
    out
}

/// Replaces every `%` followed by two hex digits (either case) by that byte; a stray `%` and
/// `+` stay as they are. Bytes that do not form UTF-8 afterwards become U+FFFD.
pub fn url_decode(value: &str) -> String {
    percent_encoding::percent_decode_str(value)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_freeswitch_examples() {
        assert_eq!(
            url_encode("2025-01-02 10:11:12", PercentMode::Always),
            "2025-01-02%2010%3A11%3A12"
        );
        assert_eq!(url_encode("#", PercentMode::Always), "%23");
        assert_eq!(
            url_encode("sofia/internal/1000@192.0.2.10", PercentMode::Always),
            "sofia/internal/1000%40192.0.2.10"
        );
        assert_eq!(url_encode("+OK\n", PercentMode::Always), "%2BOK%0A");
        assert_eq!(url_encode("fd00::2", PercentMode::Always), "fd00%3A%3A2");
        assert_eq!(
            url_encode("loopback/park &park()", PercentMode::Always),
            "loopback/park%20%26park()"
        );
        assert_eq!(
            url_encode("-._~!$'()*,/", PercentMode::Always),
            "-._~!$'()*,/"
        );
        assert_eq!(url_encode("", PercentMode::Always), "_undef_");
    }

    #[test]
    fn non_ascii_is_encoded_byte_by_byte() {
        assert_eq!(url_encode("Kö", PercentMode::Always), "K%C3%B6");
        assert_eq!(url_decode("K%C3%B6"), "Kö");
    }

    #[test]
    fn percent_modes() {
        assert_eq!(url_encode("100%41", PercentMode::Always), "100%2541");
        assert_eq!(url_encode("100%41", PercentMode::KeepEncoded), "100%41");
        assert_eq!(url_encode("100%4a", PercentMode::KeepEncoded), "100%254a");
        assert_eq!(url_encode("100%", PercentMode::KeepEncoded), "100%25");
    }

    #[test]
    fn decode_reaches_the_last_escape() {
        assert_eq!(url_decode("a%41"), "aA");
        assert_eq!(url_decode("%E2%9C%93"), "✓");
        assert_eq!(url_decode("%FF"), "\u{FFFD}");
    }

    #[test]
    fn decode_leaves_stray_percent_and_plus() {
        assert_eq!(url_decode("a+b%2"), "a+b%2");
        assert_eq!(url_decode("%zz%41%4a"), "%zzAJ");
        assert_eq!(url_decode("%"), "%");
    }

    #[test]
    fn always_mode_round_trips() {
        for value in ["a b", "%41", "Grüße 你好 👋 \"q\" & <a> 100%", "x\ny\r"] {
            assert_eq!(url_decode(&url_encode(value, PercentMode::Always)), value);
        }
    }
}
