use std::fmt;

use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};

use crate::HelcimError;

/// A Helcim `api-token`. It can move money, so it is only ever exposed to build the
/// request header (marked sensitive there too); `Debug` and errors never show it.
#[derive(Clone)]
pub struct ApiToken(SecretString);

impl ApiToken {
    /// Wraps a token, refusing one that could not be sent as a header value.
    pub fn new(token: impl Into<String>) -> Result<Self, HelcimError> {
        let token = token.into();
        let token = token.trim();
        if token.is_empty() {
            return Err(HelcimError::Configuration(
                "the Helcim API token is empty; set HELCIM_API_TOKEN or the account's token".into(),
            ));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(HelcimError::Configuration(
                "the Helcim API token has spaces or non-ASCII characters; copy it again from \
                 Helcim's API Access Configuration"
                    .into(),
            ));
        }
        Ok(ApiToken(SecretString::from(token.to_string())))
    }

    pub(crate) fn header_value(&self) -> HeaderValue {
        let mut value = HeaderValue::from_str(self.0.expose_secret())
            .expect("checked to be visible ASCII in ApiToken::new");
        value.set_sensitive(true);
        value
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}
