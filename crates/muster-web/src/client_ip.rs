//! Where a request came from: the address the failed-authentication limits count against.
//!
//! Behind a reverse proxy or load balancer every connection comes from the proxy, so all
//! clients would share one budget, and one client failing to authenticate would lock out
//! every other (an identity provider, the applications). The proxies named in
//! `trusted_proxies` are believed about the client: a request whose connection comes from one
//! is taken to come from the address it put in `X-Forwarded-For`. Each proxy appends the address
//! it received the request from, so the header is read from the right, and the first address
//! that is not itself a trusted proxy is the client's; anything left of it could have been
//! written by the client and is never read. A connection from anywhere else is its own address,
//! whatever headers it sends, so a client cannot choose the address it is counted against.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use ipnet::IpNet;

/// The client's address: the connection's, or, from a trusted proxy, the one it forwarded.
/// `None` when the server does not know the connection's (requests made in-process).
pub fn of(parts: &Parts, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())?;
    Some(forwarded(
        peer,
        parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok()),
        trusted,
    ))
}

/// The client's address given the connection's (`peer`) and the `X-Forwarded-For` lines.
fn forwarded<'a>(
    peer: IpAddr,
    lines: impl DoubleEndedIterator<Item = &'a str>,
    trusted: &[IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    let mut client = peer;
    if !is_trusted(&client) {
        return client;
    }
    for line in lines.rev() {
        for item in line.rsplit(',') {
            match parse(item.trim()) {
                Some(ip) => {
                    client = ip;
                    if !is_trusted(&ip) {
                        return client;
                    }
                }
                // Not an address (`unknown`, garbage): nothing further left can be believed.
                None => return client,
            }
        }
    }
    client
}

/// An address as proxies write it: `192.0.2.1`, `2001:db8::1`, with a port or in brackets.
fn parse(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = text.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    text.strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .and_then(|t| t.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn the_client_is_the_rightmost_address_no_trusted_proxy_wrote() {
        let trusted: Vec<IpNet> = ["10.0.0.0/8", "127.0.0.1/32"]
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        let from =
            |peer: &str, lines: &[&str]| forwarded(ip(peer), lines.iter().copied(), &trusted);
        // A connection from elsewhere is its own address, whatever it claims.
        assert_eq!(from("203.0.113.9", &["198.51.100.1"]), ip("203.0.113.9"));
        // Through one proxy.
        assert_eq!(from("10.0.0.2", &["198.51.100.1"]), ip("198.51.100.1"));
        // A client that writes the header itself cannot choose: the proxy appended the real one.
        assert_eq!(
            from("10.0.0.2", &["1.2.3.4, 198.51.100.1"]),
            ip("198.51.100.1")
        );
        // Through two proxies, on one line or on several.
        assert_eq!(
            from("127.0.0.1", &["198.51.100.1, 10.0.0.7"]),
            ip("198.51.100.1")
        );
        assert_eq!(
            from("127.0.0.1", &["1.2.3.4, 198.51.100.1", "10.0.0.7"]),
            ip("198.51.100.1")
        );
        // Ports and brackets, as some proxies write them.
        assert_eq!(from("10.0.0.2", &["198.51.100.1:5555"]), ip("198.51.100.1"));
        assert_eq!(from("10.0.0.2", &["[2001:db8::1]:443"]), ip("2001:db8::1"));
        assert_eq!(from("10.0.0.2", &["[2001:db8::1]"]), ip("2001:db8::1"));
        // Nothing forwarded, or garbage: the last address believed.
        assert_eq!(from("10.0.0.2", &[]), ip("10.0.0.2"));
        assert_eq!(from("10.0.0.2", &["unknown"]), ip("10.0.0.2"));
        assert_eq!(
            from("10.0.0.2", &["1.2.3.4, garbage, 10.0.0.9"]),
            ip("10.0.0.9")
        );
        // No trusted proxies: headers are never read.
        assert_eq!(
            forwarded(ip("10.0.0.2"), ["198.51.100.1"].into_iter(), &[]),
            ip("10.0.0.2")
        );
    }
}
