//! The listening socket, optionally shared with other instances (`HERALD_REUSE_PORT`).
//!
//! With `SO_REUSEPORT` several Herald processes bind the same address and the kernel spreads
//! new connections over them: on one machine that is the load balancer, and it is how a host
//! holds more streams than one process's open-files limit allows.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

/// Pending connections the kernel queues before they are accepted.
const BACKLOG: i32 = 4096;

pub fn bind(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn two_listeners_share_an_address_only_when_both_ask() {
        let first = bind("127.0.0.1:0".parse().unwrap(), true).unwrap();
        let addr = first.local_addr().unwrap();
        let second = bind(addr, true).expect("shared");
        assert_eq!(second.local_addr().unwrap(), addr);
        assert!(bind(addr, false).is_err(), "not without SO_REUSEPORT");
    }
}
