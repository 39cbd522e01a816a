//! Which address a request comes from, for the failed-authentication limit. Behind an
//! ingress every request arrives from the ingress's address, so without this one client
//! sending junk keys would get every client refused with 429. The TCP peer is the
//! client unless it is a proxy the operator listed (`API_TRUSTED_PROXIES`); then the
//! client is the right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
//! Entries left of it were written by the client and are never believed.

use std::net::IpAddr;

use ipnet::IpNet;

/// `API_TRUSTED_PROXIES`: comma-separated addresses or networks; empty: none.
pub fn parse_proxies(text: &str) -> Result<Vec<IpNet>, String> {
    text.split(',')
        .filter(|item| !item.trim().is_empty())
        .map(parse_proxy)
        .collect()
}

/// A list item of `API_TRUSTED_PROXIES`: an address (`10.0.0.7`) or a network
/// (`10.0.0.0/8`, `fd00::/8`).
pub fn parse_proxy(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            format!(
                "API_TRUSTED_PROXIES: {text:?} is neither an address nor a network; \
                 write e.g. 10.0.0.7 or 10.0.0.0/8"
            )
        })
}

/// The client's address: `peer` unless `peer` is trusted, then the right-most address
/// in the `X-Forwarded-For` values (`forwarded_for`, in header order) that is not
/// trusted. Falls back to `peer` when the header is missing or unreadable, so a
/// malformed header never gives a client an address of its choosing.
pub fn client_address<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    trusted: &[IpNet],
) -> IpAddr {
    let is_trusted = |address: &IpAddr| trusted.iter().any(|net| net.contains(address));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded_for
        .into_iter()
        .flat_map(|value| value.split(','))
        .collect();
    for hop in hops.iter().rev() {
        match parse_hop(hop) {
            Some(address) if is_trusted(&address) => continue,
            Some(address) => return address,
            None => return peer,
        }
    }
    peer
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(address) = hop.parse::<IpAddr>() {
        return Some(address);
    }
    hop.parse::<std::net::SocketAddr>()
        .ok()
        .map(|socket| socket.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn proxies() -> Vec<IpNet> {
        vec![
            parse_proxy("10.0.0.0/8").unwrap(),
            parse_proxy("192.0.2.1").unwrap(),
        ]
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let peer = ip("203.0.113.9");
        assert_eq!(client_address(peer, ["198.51.100.1"], &proxies()), peer);
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_hop_is_the_client() {
        let peer = ip("10.1.2.3");
        // The client wrote 1.1.1.1 itself; the ingress appended what it saw.
        assert_eq!(
            client_address(peer, ["1.1.1.1, 198.51.100.7, 10.9.9.9"], &proxies()),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_address(peer, ["1.1.1.1", "198.51.100.7:5050"], &proxies()),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_address(peer, ["[2001:db8::5]:443"], &proxies()),
            ip("2001:db8::5")
        );
    }

    #[test]
    fn a_missing_or_garbled_header_falls_back_to_the_peer() {
        let peer = ip("192.0.2.1");
        assert_eq!(client_address(peer, [], &proxies()), peer);
        assert_eq!(
            client_address(peer, ["1.1.1.1, not-an-address"], &proxies()),
            peer
        );
        assert_eq!(client_address(peer, ["10.0.0.1"], &proxies()), peer);
    }

    #[test]
    fn a_proxy_entry_that_is_no_address_is_refused_with_an_example() {
        let error = parse_proxy("ingress").unwrap_err();
        assert!(error.contains("10.0.0.0/8"), "{error}");
        assert_eq!(parse_proxy(" ::1 ").unwrap(), "::1/128".parse().unwrap());
        assert_eq!(parse_proxies("").unwrap(), vec![]);
        assert_eq!(parse_proxies("10.0.0.0/8, 192.0.2.1").unwrap().len(), 2);
        assert!(parse_proxies("10.0.0.0/8,ingress").is_err());
    }
}
