//! Reading `AMQP_URL` without ever echoing its password: lapin's parse error quotes the
//! whole URL (`Invalid URL: '…'`).

use std::fmt;

use lapin::uri::AMQPUri;
use recon_common::redact::{check_url, scrub_url};

/// What a production URL looks like, for error messages.
const EXAMPLE: &str = "amqps://USER:PASSWORD@HOST:5671/VHOST";

/// Why `AMQP_URL` could not be used. Its text and `Debug` never hold the password.
#[derive(Clone, PartialEq, Eq)]
pub struct InvalidAmqpUrl(String);

impl fmt::Display for InvalidAmqpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for InvalidAmqpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InvalidAmqpUrl({:?})", self.0)
    }
}

impl std::error::Error for InvalidAmqpUrl {}

/// Parses an AMQP URL; a malformed one gets an error that says why, without the URL.
/// (Never log the returned `AMQPUri`: its `Debug` shows the password.)
pub fn parse_amqp_url(text: &str) -> Result<AMQPUri, InvalidAmqpUrl> {
    let invalid = |why: String| InvalidAmqpUrl(format!("{why}; it should look like {EXAMPLE}"));
    check_url("AMQP_URL", text, &["amqp", "amqps"]).map_err(invalid)?;
    text.parse::<AMQPUri>().map_err(|e| {
        let reason = scrub_url(&e, text);
        invalid(format!("AMQP_URL is not a usable AMQP URL ({reason})"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD: &str = "hunter2-Pa55word";

    #[test]
    fn a_malformed_amqp_url_never_shows_its_password() {
        for url in [
            format!("guest:{PASSWORD}@rabbit.internal/%2f"),
            format!("amqp://guest:{PASSWORD}@rabbit.internal:notaport/%2f"),
            format!("amqp://guest:{PASSWORD}@rabbit.internal:99999/%2f"),
            format!("amqp://guest:{PASSWORD}@[::1/%2f"),
            format!("amqp://guest:{PASSWORD}@rabbit.internal/%2f?heartbeat=often"),
            format!("amqp://guest:{PASSWORD}%zz@rabbit.internal/%2f?auth_mechanism=magic"),
            format!("http://guest:{PASSWORD}@rabbit.internal/%2f"),
            format!("amqp//guest:{PASSWORD}@rabbit.internal/%2f"),
        ] {
            let error = parse_amqp_url(&url).expect_err("a malformed URL is refused");
            for shown in [error.to_string(), format!("{error:?}")] {
                assert!(!shown.contains("hunter2"), "{url:?} shows: {shown}");
                assert!(shown.contains("AMQP_URL"), "names the variable: {shown}");
            }
        }
    }

    #[test]
    fn lapin_itself_would_have_echoed_the_password() {
        // Why the wrapper exists: lapin's own error for the first URL above.
        let url = format!("guest:{PASSWORD}@rabbit.internal/%2f");
        let lapin_error = url.parse::<AMQPUri>().unwrap_err();
        assert!(lapin_error.contains(PASSWORD));
    }

    #[test]
    fn good_urls_parse() {
        let uri =
            parse_amqp_url("amqps://recon:pw@rabbit.internal:5671/prod?heartbeat=30").unwrap();
        assert_eq!(uri.authority.host, "rabbit.internal");
        assert_eq!(uri.authority.port, 5671);
        assert_eq!(uri.vhost, "prod");
    }
}
