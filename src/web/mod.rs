//! What every feature shares on the web side: the page, sessions, assets, errors and guards.

pub mod assets;
mod connection;
pub mod error;
pub mod guard;
pub mod input;
pub mod page;
pub mod serve;
pub mod session;
mod sse;
pub mod stats;
