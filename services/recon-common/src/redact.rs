//! Connection URLs (`DATABASE_URL`, `AMQP_URL`) carry passwords; libraries' parse errors
//! may echo the URL. What is shown of a URL or an error about one goes through here.

/// `message` with the URL `text`, and its password as written and percent-decoded,
/// replaced by `***`.
pub fn scrub_url(message: &str, text: &str) -> String {
    let mut secrets = vec![text.to_string()];
    if let Ok(parsed) = url::Url::parse(text)
        && let Some(password) = parsed.password()
    {
        secrets.push(password.to_string());
        secrets.push(
            percent_encoding::percent_decode_str(password)
                .decode_utf8_lossy()
                .into_owned(),
        );
    }
    let mut message = message.to_string();
    for secret in secrets.iter().filter(|s| s.len() > 1) {
        message = message.replace(secret.as_str(), "***");
    }
    message
}

/// Checks the outline of a connection URL without echoing any of it: it parses, and
/// its scheme is one of `schemes`. `Err` says why, naming `variable`.
pub fn check_url(variable: &str, text: &str, schemes: &[&str]) -> Result<url::Url, String> {
    // `url`'s errors are fixed phrases ("invalid port number"), never the input.
    let parsed = url::Url::parse(text).map_err(|e| format!("{variable} is not a URL ({e})"))?;
    // `user:password@host` parses too, as scheme `user` with the password in the path.
    if !schemes.contains(&parsed.scheme()) || parsed.cannot_be_a_base() {
        return Err(format!(
            "{variable} does not start with {}",
            schemes
                .iter()
                .map(|s| format!("{s}://"))
                .collect::<Vec<_>>()
                .join(" or ")
        ));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_and_its_password_are_scrubbed_from_a_message() {
        let url = "amqp://user:p%40ss-word@host/vh";
        let message = format!("bad URI {url}: p@ss-word and p%40ss-word");
        let scrubbed = scrub_url(&message, url);
        assert_eq!(scrubbed, "bad URI ***: *** and ***");
    }

    #[test]
    fn outline_errors_never_echo_the_url() {
        for text in [
            "user:hunter2@host/db",
            "postgres://user:hunter2@host:99999/db",
            "http://user:hunter2@host/db",
            "postgres//user:hunter2@host/db",
        ] {
            let error = check_url("DATABASE_URL", text, &["postgres", "postgresql"]).unwrap_err();
            assert!(!error.contains("hunter2"), "{error}");
            assert!(error.starts_with("DATABASE_URL "), "{error}");
        }
        assert!(check_url("AMQP_URL", "amqps://u:p@h:5671/v", &["amqp", "amqps"]).is_ok());
    }
}
