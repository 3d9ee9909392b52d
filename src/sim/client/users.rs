//! Other users as the client shows them: `GET USER <h> FULLNAME|DISPLAYNAME|ONLINESTATUS|
//! BUDDYSTATUS`, `SEARCH FRIENDS`, and `SET USER <h> BUDDYSTATUS 1|2 [text]`; the network's
//! changes arrive as `USER <h> ONLINESTATUS ...` / `BUDDYSTATUS ...` notifications.

use super::{unexpected, Client};
use crate::sim::proto::{Reply, Request};

impl Client {
    pub(super) async fn get_user(&mut self, handle: &str, property: &str) -> Vec<String> {
        match self
            .net(Request::UserInfo {
                handle: handle.to_string(),
            })
            .await
        {
            Ok(Reply::User {
                display_name,
                status,
                buddy,
                authorized,
                blocked,
                ..
            }) => match property {
                "FULLNAME" | "DISPLAYNAME" => {
                    vec![format!("USER {handle} {property} {display_name}")]
                }
                "ONLINESTATUS" => vec![format!("USER {handle} ONLINESTATUS {status}")],
                "BUDDYSTATUS" => vec![format!("USER {handle} BUDDYSTATUS {buddy}")],
                "ISAUTHORIZED" => vec![format!("USER {handle} ISAUTHORIZED {}", flag(authorized))],
                "ISBLOCKED" => vec![format!("USER {handle} ISBLOCKED {}", flag(blocked))],
                _ => vec!["ERROR 2 Unknown command".into()],
            },
            Ok(other) => vec![unexpected(other)],
            Err(line) => vec![line],
        }
    }

    /// `SET USER <h> ISAUTHORIZED|ISBLOCKED TRUE|FALSE`, answered with the new value.
    pub(super) async fn set_user_flag(
        &mut self,
        handle: String,
        property: &str,
        value: String,
    ) -> Vec<String> {
        let on = match value.as_str() {
            "TRUE" => true,
            "FALSE" => false,
            _ => return vec!["ERROR 518 Invalid value".into()],
        };
        let request = match (property, on) {
            ("ISAUTHORIZED", true) => Request::Authorize {
                handle: handle.clone(),
            },
            ("ISAUTHORIZED", false) => Request::Deauthorize {
                handle: handle.clone(),
            },
            _ => Request::Block {
                handle: handle.clone(),
                on,
            },
        };
        match self.net(request).await {
            Ok(Reply::Ok) => vec![format!("USER {handle} {property} {value}")],
            Ok(other) => vec![unexpected(other)],
            Err(line) => vec![line],
        }
    }

    /// `USERS a, b, c` (or a bare `USERS` for an empty list), in name order.
    pub(super) async fn search_friends(&mut self) -> Vec<String> {
        match self.net(Request::Friends).await {
            Ok(Reply::Friends { handles }) if handles.is_empty() => vec!["USERS".into()],
            Ok(Reply::Friends { handles }) => vec![format!("USERS {}", handles.join(", "))],
            Ok(other) => vec![unexpected(other)],
            Err(line) => vec![line],
        }
    }

    /// Answered with the property's new value, as SETs are; the account's other clients hear
    /// it as a notification.
    pub(super) async fn set_buddy(
        &mut self,
        handle: &str,
        status: Option<u8>,
        text: &str,
    ) -> Vec<String> {
        let Some(status) = status else {
            return vec!["ERROR 518 Invalid value".into()];
        };
        match self
            .net(Request::SetBuddy {
                handle: handle.to_string(),
                status,
                text: text.to_string(),
            })
            .await
        {
            Ok(Reply::Ok) => vec![format!("USER {handle} BUDDYSTATUS {status}")],
            Ok(other) => vec![unexpected(other)],
            Err(line) => vec![line],
        }
    }
}

fn flag(on: bool) -> &'static str {
    if on {
        "TRUE"
    } else {
        "FALSE"
    }
}
