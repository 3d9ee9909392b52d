//! Which interface and which Skype destination a `socket` channel asks for, from its
//! destination number: `skype/<dest>` (RR hunt) or `skypopen/<iface|RR|ANY>/<dest>`.

/// How to pick the interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// Round robin over idle interfaces (`skype/<dest>`, `skypopen/RR/...`, `skypopen/ANY/...`).
    Hunt,
    /// The interface with exactly this name.
    Named(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialTarget {
    pub pick: Pick,
    /// Still unvalidated: `skype::api::validate_destination` decides.
    pub destination: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialError {
    #[error("destination number {0:?} is neither skype/<dest> nor skypopen/<interface>/<dest>")]
    Unrecognised(String),
    #[error("destination number {0:?} names no destination")]
    Empty(String),
}

/// Parses `skype/echo123`, `skypopen/interface1/echo123`, `skypopen/RR/+3912345`.
/// The original crashed on a string without `/` and disagreed with itself when the destination
/// contained one; here the interface is the first segment and the destination all the rest.
pub fn parse(number: &str) -> Result<DialTarget, DialError> {
    let number = number.trim();
    let empty = || DialError::Empty(number.to_string());
    if let Some(destination) = strip_prefix_ci(number, "skype/") {
        if destination.is_empty() {
            return Err(empty());
        }
        return Ok(DialTarget {
            pick: Pick::Hunt,
            destination: destination.to_string(),
        });
    }
    if let Some(rest) = strip_prefix_ci(number, "skypopen/") {
        let (iface, destination) = rest.split_once('/').ok_or_else(empty)?;
        if destination.is_empty() || iface.is_empty() {
            return Err(empty());
        }
        let pick = if iface.eq_ignore_ascii_case("RR") || iface.eq_ignore_ascii_case("ANY") {
            Pick::Hunt
        } else {
            Pick::Named(iface.to_string())
        };
        return Ok(DialTarget {
            pick,
            destination: destination.to_string(),
        });
    }
    Err(DialError::Unrecognised(number.to_string()))
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(pick: Pick, destination: &str) -> DialTarget {
        DialTarget {
            pick,
            destination: destination.into(),
        }
    }

    #[test]
    fn both_dial_string_shapes() {
        assert_eq!(
            parse("skype/echo123").unwrap(),
            target(Pick::Hunt, "echo123")
        );
        assert_eq!(
            parse("skypopen/RR/+3912345").unwrap(),
            target(Pick::Hunt, "+3912345")
        );
        assert_eq!(
            parse("skypopen/any/bob").unwrap(),
            target(Pick::Hunt, "bob")
        );
        assert_eq!(
            parse("skypopen/interface2/user1").unwrap(),
            target(Pick::Named("interface2".into()), "user1")
        );
    }

    #[test]
    fn malformed_numbers_are_errors_not_crashes() {
        for bad in [
            "5000",
            "skypopen/echo123",
            "skype/",
            "skypopen//x",
            "skypopen/a/",
            "",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
