//! What every feature shares on the web side: serving connections and streams, the page,
//! sessions, assets, guards, CORS, and one way each to read input (bodies, ids, paging), to choose
//! the answer's language and to show errors.

pub mod assets;
mod connection;
pub mod cors;
pub mod error;
pub mod guard;
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
pub mod stats;
pub mod tab_ids;
mod wire;
