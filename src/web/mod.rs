//! What every feature shares on the web side: the page, sessions, assets, errors and guards.

pub mod assets;
mod connection;
pub mod error;
pub mod guard;
pub mod id;
pub mod input;
pub mod negotiate;
pub mod page;
pub mod paging;
pub mod serve;
pub mod session;
pub mod sse;
