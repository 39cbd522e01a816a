//! Which headers cross the gateway. End-to-end headers pass unchanged, in both
//! directions; hop-by-hop ones (RFC 9110 §7.6.1) describe one connection and stop at
//! the gateway: `Connection` and every header it names, `Keep-Alive`, `Proxy-*`, `TE`,
//! `Trailer`, `Transfer-Encoding`, `Upgrade`. Framing is the gateway's own on each
//! side (`Content-Length` is recomputed from the unchanged body) and `Host` is the
//! upstream's.

/// Hop-by-hop by definition.
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Set by the gateway itself on each side: the framing of the body it sends, the host
/// it connects to, and `Expect` (the gateway reads the whole body before forwarding,
/// so a `100-continue` has already been answered).
const REFRAMED: [&str; 3] = ["content-length", "host", "expect"];

/// The headers to pass on, from `headers` (names as received, any case), in order.
pub fn end_to_end<'a>(
    headers: impl Iterator<Item = (&'a str, &'a [u8])> + Clone,
) -> Vec<(&'a str, &'a [u8])> {
    let named = connection_tokens(headers.clone());
    headers
        .filter(|(name, _)| {
            let name = name.to_ascii_lowercase();
            !HOP_BY_HOP.contains(&name.as_str())
                && !REFRAMED.contains(&name.as_str())
                && !name.starts_with("proxy-")
                && !named.contains(&name)
        })
        .collect()
}

/// The header names `Connection` lists, lower-cased.
fn connection_tokens<'a>(headers: impl Iterator<Item = (&'a str, &'a [u8])>) -> Vec<String> {
    headers
        .filter(|(name, _)| name.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, value)| {
            String::from_utf8_lossy(value)
                .split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(headers: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let bytes: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
        end_to_end(bytes.into_iter())
            .into_iter()
            .map(|(n, v)| (n, std::str::from_utf8(v).unwrap()))
            .collect()
    }

    #[test]
    fn end_to_end_headers_pass_unchanged_and_in_order() {
        let headers = [
            ("api-token", "t"),
            ("idempotency-key", "k-0123456789012345678901234"),
            ("content-type", "application/json"),
            ("accept-encoding", "gzip"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
        ];
        assert_eq!(pass(&headers), headers.to_vec());
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_stop_here() {
        let headers = [
            ("Connection", "keep-alive, X-Trace-Hop"),
            ("x-trace-hop", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Authorization", "Basic x"),
            ("proxy-connection", "keep-alive"),
            ("TE", "trailers"),
            ("Trailer", "Expires"),
            ("Transfer-Encoding", "chunked"),
            ("Upgrade", "h2c"),
            ("Host", "gateway:8083"),
            ("Content-Length", "12"),
            ("Expect", "100-continue"),
            ("partner-token", "p"),
        ];
        assert_eq!(pass(&headers), vec![("partner-token", "p")]);
    }
}
