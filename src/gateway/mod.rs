//! The product logic between Skype and FreeSWITCH: interfaces and hunting, calls, chats and
//! the `sk` command family.

pub mod causes;
pub mod originate;
pub mod registry;
