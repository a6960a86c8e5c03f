//! What every feature shares on the web side: serving connections and streams, the page,
//! sessions, assets, guards, CORS, and one way each to read input (bodies, ids, paging), to choose
//! the answer's language and to show errors.

pub mod access;
pub mod assets;
pub mod client;
mod connection;
pub mod cors;
pub mod error;
pub mod guard;
pub mod health;
pub mod id;
pub mod input;
pub mod listen;
pub mod negotiate;
pub mod page;
pub mod paging;
pub mod presence;
mod respond;
pub mod serve;
pub mod session;
pub mod sse;
pub mod tab_ids;
pub mod tls;
mod wire;
