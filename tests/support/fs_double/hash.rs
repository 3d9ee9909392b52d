//! mod_hash's `hash` API as the double answers it, reply for reply (mod_hash.c,
//! hash_api_function): `insert|insert_ifempty|delete|delete_ifmatch|select/<realm>/<key>[/<value>]`,
//! split on `/` into at most four parts, stored under `<realm>_<key>`.

use std::collections::HashMap;

const USAGE: &str = "-ERR Usage: hash [insert|delete|select]/<realm>/<key>/<value>\n";

#[derive(Debug, Default)]
pub struct SharedHash {
    entries: HashMap<String, String>,
}

impl SharedHash {
    pub fn api(&mut self, args: &str) -> String {
        let parts: Vec<&str> = args.splitn(4, '/').collect();
        if parts.len() < 3 || parts[0].is_empty() {
            return USAGE.into();
        }
        let key = format!("{}_{}", parts[1], parts[2]);
        let value = parts.get(3).copied();
        match (parts[0].to_ascii_lowercase().as_str(), value) {
            ("insert", Some(v)) => {
                self.entries.insert(key, v.to_string());
                "+OK\n".into()
            }
            ("insert_ifempty", Some(v)) => match self.entries.entry(key) {
                std::collections::hash_map::Entry::Occupied(_) => {
                    "-ERR key already exists\n".into()
                }
                std::collections::hash_map::Entry::Vacant(free) => {
                    free.insert(v.to_string());
                    "+OK\n".into()
                }
            },
            ("delete", _) => match self.entries.remove(&key) {
                Some(_) => "+OK\n".into(),
                None => "-ERR Not found\n".into(),
            },
            ("delete_ifmatch", Some(v)) => match self.entries.get(&key) {
                Some(held) if held == v => {
                    self.entries.remove(&key);
                    "+OK\n".into()
                }
                Some(_) => "-ERR Doesn't match\n".into(),
                None => "-ERR Not found\n".into(),
            },
            ("select", _) => self.entries.get(&key).cloned().unwrap_or_default(),
            _ => USAGE.into(),
        }
    }

    /// Entries whose key starts with `<realm>_`, for tests.
    pub fn realm(&self, realm: &str) -> Vec<(String, String)> {
        let prefix = format!("{realm}_");
        let mut found: Vec<(String, String)> = self
            .entries
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(k, v)| (k[prefix.len()..].to_string(), v.clone()))
            .collect();
        found.sort();
        found
    }
}
