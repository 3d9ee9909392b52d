//! Text from the Skype side (names, statuses, request texts) made inert for FreeSWITCH's
//! events and the command surface: one line, bounded.

/// Control characters dropped (line breaks among them), cut to `limit` characters.
pub fn inert(text: &str, limit: usize) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(limit)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_go_and_the_length_is_bounded() {
        assert_eq!(inert("a\r\nb\0c\td", 10), "abcd");
        assert_eq!(inert("ééééé", 3), "ééé");
        assert_eq!(inert(" spaced ", 10), " spaced ");
    }
}
