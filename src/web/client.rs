//! Who is on the other end: the client's address, and whether its browser reached Herald over
//! HTTPS, as logs and cookies need them.
//!
//! The connection says who its peer is ([`Peer`], inserted by `web::connection`). Behind a
//! proxy that is the proxy, so a peer listed in `HERALD_TRUSTED_PROXIES` is believed about the
//! client: `X-Forwarded-For`, read from the right past every trusted address (a client can
//! put anything at its left end), and the scheme in `X-Forwarded-Proto`. Headers from any other
//! peer are ignored, so a client cannot pass itself off as another address or as HTTPS.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

use crate::AppState;

/// The connection's peer, as the connection saw it.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub addr: SocketAddr,
    /// The connection is TLS (Herald's own HTTPS).
    pub tls: bool,
}

/// The client, as far as Herald can tell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Client {
    /// `None` when the connection did not say (a router called without one, in tests).
    pub addr: Option<IpAddr>,
    /// The browser's connection is HTTPS: Herald's own, or a trusted proxy's.
    pub https: bool,
}

impl Client {
    /// Works out the client of a request that came from `peer`.
    pub fn resolve(peer: Option<Peer>, headers: &HeaderMap, trusted: &[IpNet]) -> Client {
        let Some(peer) = peer else {
            return Client::default();
        };
        let direct = Client {
            addr: Some(peer.addr.ip()),
            https: peer.tls,
        };
        if !is_trusted(peer.addr.ip(), trusted) {
            return direct;
        }
        let addr = forwarded_for(headers, trusted).or(direct.addr);
        let https = match last_value(headers, "x-forwarded-proto") {
            Some(proto) => proto.eq_ignore_ascii_case("https"),
            None => direct.https,
        };
        Client { addr, https }
    }

    /// The client of a request that went through [`identify`].
    pub fn of<B>(req: &axum::http::Request<B>) -> Client {
        req.extensions()
            .get::<Client>()
            .copied()
            .unwrap_or_default()
    }

    /// [`Client::of`] for an extractor.
    pub fn of_parts(parts: &Parts) -> Client {
        parts
            .extensions
            .get::<Client>()
            .copied()
            .unwrap_or_default()
    }
}

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            Some(addr) => addr.fmt(f),
            None => f.write_str("-"),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Client, Self::Rejection> {
        Ok(Client::of_parts(parts))
    }
}

/// Middleware: puts the request's [`Client`] in its extensions.
pub async fn identify(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<Peer>().copied();
    let client = Client::resolve(peer, req.headers(), &state.config.ops.trusted_proxies);
    req.extensions_mut().insert(client);
    next.run(req).await
}

fn is_trusted(addr: IpAddr, trusted: &[IpNet]) -> bool {
    let addr = addr.to_canonical();
    trusted.iter().any(|net| net.contains(&addr))
}

/// The rightmost address in `X-Forwarded-For` that is not a trusted proxy (or the leftmost, if
/// all are); `None` if the header is missing or holds something that is not an address.
fn forwarded_for(headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        for hop in value.to_str().ok()?.split(',') {
            hops.push(hop.trim().parse::<IpAddr>().ok()?);
        }
    }
    let first = *hops.first()?;
    Some(
        hops.into_iter()
            .rev()
            .find(|hop| !is_trusted(*hop, trusted))
            .unwrap_or(first),
    )
}

/// The last value of a header that may be repeated or a list (the one the nearest proxy set).
fn last_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(name)
        .iter()
        .next_back()?
        .to_str()
        .ok()?
        .rsplit(',')
        .next()
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn peer(addr: &str, tls: bool) -> Option<Peer> {
        Some(Peer {
            addr: SocketAddr::new(addr.parse().unwrap(), 40000),
            tls,
        })
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn ip(addr: &str) -> Option<IpAddr> {
        Some(addr.parse().unwrap())
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let h = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
        ]);
        let c = Client::resolve(peer("203.0.113.9", false), &h, &nets(&["10.0.0.0/8"]));
        assert_eq!(
            c,
            Client {
                addr: ip("203.0.113.9"),
                https: false
            }
        );
        let c = Client::resolve(peer("203.0.113.9", true), &h, &[]);
        assert!(c.https, "Herald's own TLS is HTTPS");
    }

    #[test]
    fn a_trusted_proxy_is_believed_from_the_right() {
        let trusted = nets(&["10.0.0.0/8", "127.0.0.1/32"]);
        // The client forged the left end; the proxies appended the rest.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 198.51.100.7"),
            ("x-forwarded-for", "10.1.2.3"),
            ("x-forwarded-proto", "https"),
        ]);
        let c = Client::resolve(peer("127.0.0.1", false), &h, &trusted);
        assert_eq!(
            c,
            Client {
                addr: ip("198.51.100.7"),
                https: true
            }
        );
        let all_trusted = headers(&[("x-forwarded-for", "10.0.0.5, 10.0.0.6")]);
        let c = Client::resolve(peer("127.0.0.1", true), &all_trusted, &trusted);
        assert_eq!(c.addr, ip("10.0.0.5"));
        assert!(c.https, "no X-Forwarded-Proto: the connection's own scheme");
    }

    #[test]
    fn a_garbled_or_missing_header_leaves_the_proxy_as_the_client() {
        let trusted = nets(&["127.0.0.1/32"]);
        for h in [
            headers(&[("x-forwarded-for", "not-an-address")]),
            headers(&[]),
        ] {
            let c = Client::resolve(peer("127.0.0.1", false), &h, &trusted);
            assert_eq!(c.addr, ip("127.0.0.1"));
        }
        let h = headers(&[("x-forwarded-proto", "http")]);
        assert!(!Client::resolve(peer("127.0.0.1", true), &h, &trusted).https);
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_proxies() {
        let h = headers(&[("x-forwarded-for", "192.0.2.1")]);
        let c = Client::resolve(
            peer("::ffff:127.0.0.1", false),
            &h,
            &nets(&["127.0.0.1/32"]),
        );
        assert_eq!(c.addr, ip("192.0.2.1"));
    }
}
