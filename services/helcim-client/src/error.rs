use std::time::Duration;

use crate::{ApiErrors, RawAnswer};

/// What went wrong talking to Helcim, and whether trying again later can help
/// ([`HelcimError::is_transient`]). Messages say what to do next and never include the
/// API token.
#[derive(Debug, thiserror::Error)]
pub enum HelcimError {
    #[error("client configuration: {0}")]
    Configuration(String),

    #[error(
        "Helcim refused the API token (401: {0}); check that the account's API token is \
         current in Helcim's API Access Configuration"
    )]
    Unauthorized(ApiErrors),

    #[error(
        "the API token lacks permission for this call ({status}: {errors}); raise the \
         token's access level in Helcim's API Access Configuration"
    )]
    Forbidden { status: u16, errors: ApiErrors },

    #[error("{what} was not found at Helcim (404: {errors})")]
    NotFound { what: String, errors: ApiErrors },

    #[error(
        "Helcim's rate limit still refused {what} after {attempts} attempts (429: {errors}); \
         the account's 100/min or 3000/h budget is spent, possibly by other software \
         using the same merchant account"
    )]
    RateLimited {
        what: String,
        attempts: usize,
        errors: ApiErrors,
    },

    #[error("Helcim failed {what} after {attempts} attempts ({status}: {errors})")]
    Server {
        what: String,
        status: u16,
        attempts: usize,
        errors: ApiErrors,
    },

    #[error(
        "Helcim's API answered {what} with a redirect ({status} to {location:?}), which is \
         not followed: it would carry the API token elsewhere. Check HELCIM_API_BASE_URL \
         (it should be {base}, including /v2)",
        base = crate::client::DEFAULT_BASE_URL
    )]
    Redirected {
        what: String,
        status: u16,
        location: String,
    },

    #[error("Helcim rejected {what} ({status}: {errors})")]
    Rejected {
        what: String,
        status: u16,
        errors: ApiErrors,
    },

    #[error("could not reach Helcim for {what} after {attempts} attempts: {reason}")]
    Transport {
        what: String,
        attempts: usize,
        reason: String,
    },

    #[error("Helcim did not answer {what} within {timeout:?} after {attempts} attempts")]
    Timeout {
        what: String,
        attempts: usize,
        timeout: Duration,
    },

    #[error("Helcim's answer to {what} could not be read: {reason}")]
    Decode { what: String, reason: String },

    /// A success whose body is not JSON, or not the object expected. The body is kept
    /// in `answer` (never in the message) so the caller can store what Helcim said.
    #[error("Helcim's answer to {what} could not be read: {reason}")]
    Unreadable {
        what: String,
        reason: String,
        answer: RawAnswer,
    },
}

impl HelcimError {
    /// True for failures that may pass on their own (rate limits, 5xx, network,
    /// timeouts): worth a delayed retry. False for ones that need a person.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            HelcimError::RateLimited { .. }
                | HelcimError::Server { .. }
                | HelcimError::Transport { .. }
                | HelcimError::Timeout { .. }
        )
    }

    /// The answer exactly as received, when Helcim answered with success but the body
    /// could not be read.
    pub fn unreadable_answer(&self) -> Option<&RawAnswer> {
        match self {
            HelcimError::Unreadable { answer, .. } => Some(answer),
            _ => None,
        }
    }

    /// True when Helcim said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, HelcimError::NotFound { .. })
    }

    pub(crate) fn set_attempts(&mut self, count: usize) {
        match self {
            HelcimError::RateLimited { attempts, .. }
            | HelcimError::Server { attempts, .. }
            | HelcimError::Transport { attempts, .. }
            | HelcimError::Timeout { attempts, .. } => *attempts = count,
            _ => {}
        }
    }
}
