//! Checks a merged configuration tree key by key, so that one bad key does not hide the next:
//! serde stops at the first error of a struct, an operator wants the whole list.
//!
//! The set of known keys is read from the serde derive of each section struct itself, so a new
//! field is known the moment it is added and the two can never drift apart.

use super::validate::Problem;
use ::config::{Map, Value, ValueKind};
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

/// The field names a `#[derive(Deserialize)]` struct accepts (aliases included).
///
/// Works for structs without `#[serde(flatten)]`, which turns the struct into a map.
pub fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldNames(&mut fields));
    fields
}

/// A deserializer that only records the field list serde hands to `deserialize_struct`.
struct FieldNames<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for FieldNames<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("field names captured"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// Checks every key of the table `value` against `T`: unknown keys and values `T` rejects
/// become problems under `prefix.key` and are dropped; what is left deserializes into `T`.
///
/// Returns `None` only when `value` is not a table at all (after recording that).
pub fn section<T: DeserializeOwned>(
    prefix: &str,
    value: Value,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    let table = table_or_problem(prefix, value, problems)?;
    let kept = checked_keys::<T>(prefix, table, &[], problems);
    match T::deserialize(Value::new(None, ValueKind::Table(kept))) {
        Ok(parsed) => Some(parsed),
        Err(err) => {
            problems.push(Problem::new(prefix, clean_message(&err.to_string())));
            None
        }
    }
}

/// The keys of `table` that `T` accepts one by one; `extra_known` are keys the caller handles
/// itself (kept out of the result, never reported as unknown).
pub fn checked_keys<T: DeserializeOwned>(
    prefix: &str,
    table: Map<String, Value>,
    extra_known: &[&str],
    problems: &mut Vec<Problem>,
) -> Map<String, Value> {
    let known = field_names::<T>();
    let mut kept = Map::new();
    let mut entries: Vec<(String, Value)> = table.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, value) in entries {
        if extra_known.contains(&key.as_str()) {
            continue;
        }
        let path = join(prefix, &key);
        if !known.contains(&key.as_str()) {
            let all: Vec<&str> = known.iter().chain(extra_known).copied().collect();
            problems.push(Problem::new(path, unknown_key_message(&key, &all)));
            continue;
        }
        let mut single = Map::new();
        single.insert(key.clone(), value.clone());
        match T::deserialize(Value::new(None, ValueKind::Table(single))) {
            Ok(_) => {
                kept.insert(key, value);
            }
            Err(err) => problems.push(Problem::new(path, clean_message(&err.to_string()))),
        }
    }
    kept
}

pub fn table_or_problem(
    key: &str,
    value: Value,
    problems: &mut Vec<Problem>,
) -> Option<Map<String, Value>> {
    match value.kind {
        ValueKind::Table(table) => Some(table),
        ValueKind::Nil => Some(Map::new()),
        _ => {
            problems.push(Problem::new(key, "must be a table"));
            None
        }
    }
}

pub fn unknown_key_message(key: &str, known: &[&str]) -> String {
    let mut sorted: Vec<&str> = known.to_vec();
    sorted.sort_unstable();
    match closest(key, &sorted) {
        Some(guess) => format!("unknown key (did you mean {guess:?}?)"),
        None => format!("unknown key (known keys: {})", sorted.join(", ")),
    }
}

/// The known key within edit distance 2 of a typo, if there is exactly one best.
fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for candidate in known {
        let distance = edit_distance(key, candidate);
        if distance <= 2 && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

pub fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// The `config` crate appends where it thinks a value came from; problems carry their own,
/// more precise location.
pub fn clean_message(message: &str) -> String {
    let cut = [" for key `", " in the environment", " in "]
        .iter()
        .filter_map(|marker| message.find(marker))
        .min()
        .unwrap_or(message.len());
    let message = &message[..cut];
    match message.split_once("does not have variant constructor ") {
        Some((_, value)) => format!("unknown value {:?}", value.trim()),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        #[serde(default)]
        port: u16,
        #[serde(default)]
        flag: bool,
    }

    fn table(pairs: &[(&str, ValueKind)]) -> Value {
        let mut map = Map::new();
        for (k, v) in pairs {
            map.insert(k.to_string(), Value::new(None, v.clone()));
        }
        Value::new(None, ValueKind::Table(map))
    }

    #[test]
    fn field_names_come_from_the_derive() {
        assert_eq!(field_names::<Sample>(), &["port", "flag"]);
    }

    #[test]
    fn every_bad_key_is_reported_and_the_rest_survives() {
        let mut problems = Vec::new();
        let value = table(&[
            ("port", ValueKind::String("http".into())),
            ("flg", ValueKind::Boolean(true)),
            ("flag", ValueKind::Boolean(true)),
            ("zzzzzz", ValueKind::I64(1)),
        ]);
        let parsed: Sample = section("s", value, &mut problems).unwrap();
        assert!(parsed.flag);
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["s.flg", "s.port", "s.zzzzzz"]);
        assert_eq!(problems[0].message, "unknown key (did you mean \"flag\"?)");
        assert_eq!(problems[2].message, "unknown key (known keys: flag, port)");
    }

    #[test]
    fn enum_errors_name_the_value() {
        assert_eq!(
            clean_message("enum ClientKind does not have variant constructor skipe for key `kind`"),
            "unknown value \"skipe\""
        );
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("esll", "esl"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "ab"), 2);
    }
}
