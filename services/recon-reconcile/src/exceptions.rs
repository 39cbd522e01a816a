//! Exception classes, statuses and the workflow: `open` → `acknowledged` →
//! `resolved`. A person acknowledges and resolves (with a note); the system clears an
//! exception whose cause went away (`resolved`, resolution `cleared`) and reopens a
//! cleared one whose cause comes back. A person's resolution is final.

use serde::{Deserialize, Serialize};

/// Why an exception was raised (the database's `reconciliation_exceptions.class`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExceptionClass {
    /// A sweep found a transaction at Helcim that no webhook announced.
    MissedWebhook,
    /// The ledger holds a transaction Helcim's listing no longer shows.
    MissingInApi,
    /// A closed batch's totals disagree with the ledger's transactions in it.
    BatchMismatch,
    /// A transaction's amount changed at Helcim after it was recorded.
    AmountChanged,
    /// A transaction's status (or type) changed at Helcim after it was recorded.
    StatusChanged,
    /// A transaction moved to another card batch after it was recorded.
    BatchChanged,
    /// A transaction's currency differs from its batch's (or changed).
    CurrencyMismatch,
    /// Two approved transactions look like the same payment made twice.
    DuplicateSuspect,
    /// An approved refund (or reverse) with no sale in the ledger that it could undo.
    OrphanRefund,
    /// A status or type this version does not know: not posted until a person looks.
    UnknownStatus,
}

impl ExceptionClass {
    pub const ALL: [ExceptionClass; 10] = [
        ExceptionClass::MissedWebhook,
        ExceptionClass::MissingInApi,
        ExceptionClass::BatchMismatch,
        ExceptionClass::AmountChanged,
        ExceptionClass::StatusChanged,
        ExceptionClass::BatchChanged,
        ExceptionClass::CurrencyMismatch,
        ExceptionClass::DuplicateSuspect,
        ExceptionClass::OrphanRefund,
        ExceptionClass::UnknownStatus,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExceptionClass::MissedWebhook => "missed_webhook",
            ExceptionClass::MissingInApi => "missing_in_api",
            ExceptionClass::BatchMismatch => "batch_mismatch",
            ExceptionClass::AmountChanged => "amount_changed",
            ExceptionClass::StatusChanged => "status_changed",
            ExceptionClass::BatchChanged => "batch_changed",
            ExceptionClass::CurrencyMismatch => "currency_mismatch",
            ExceptionClass::DuplicateSuspect => "duplicate_suspect",
            ExceptionClass::OrphanRefund => "orphan_refund",
            ExceptionClass::UnknownStatus => "unknown_status",
        }
    }

    pub fn parse(text: &str) -> Result<ExceptionClass, UnknownName> {
        ExceptionClass::ALL
            .into_iter()
            .find(|c| c.as_str() == text)
            .ok_or_else(|| UnknownName {
                what: "exception class",
                given: text.to_string(),
                allowed: ExceptionClass::ALL.iter().map(|c| c.as_str()).collect(),
            })
    }
}

impl std::fmt::Display for ExceptionClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExceptionStatus {
    Open,
    Acknowledged,
    Resolved,
}

impl ExceptionStatus {
    pub const ALL: [ExceptionStatus; 3] = [
        ExceptionStatus::Open,
        ExceptionStatus::Acknowledged,
        ExceptionStatus::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExceptionStatus::Open => "open",
            ExceptionStatus::Acknowledged => "acknowledged",
            ExceptionStatus::Resolved => "resolved",
        }
    }

    pub fn parse(text: &str) -> Result<ExceptionStatus, UnknownName> {
        ExceptionStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| UnknownName {
                what: "exception status",
                given: text.to_string(),
                allowed: ExceptionStatus::ALL.iter().map(|s| s.as_str()).collect(),
            })
    }
}

/// A name that is not one of the allowed ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {given:?}; use one of: {}", allowed.join(", "))]
pub struct UnknownName {
    pub what: &'static str,
    pub given: String,
    pub allowed: Vec<&'static str>,
}

/// What happens to an exception (the audit trail's `action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExceptionAction {
    /// A person saw it.
    Acknowledge,
    /// A person resolved it, with a note.
    Resolve,
    /// The system saw its cause go away.
    Clear,
    /// The system saw the cause of a cleared exception come back.
    Reopen,
}

impl ExceptionAction {
    /// The audit trail's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            ExceptionAction::Acknowledge => "acknowledged",
            ExceptionAction::Resolve => "resolved",
            ExceptionAction::Clear => "cleared",
            ExceptionAction::Reopen => "reopened",
        }
    }
}

/// Why an action is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("the exception is already {0}")]
    Already(&'static str),
    #[error("the exception was resolved by a person; that is final")]
    ResolvedByPerson,
    #[error("only an exception the system cleared can reopen")]
    NotCleared,
}

/// The status after `action` on an exception in `status`; `cleared` says whether a
/// resolved one was resolved by the system.
pub fn next_status(
    status: ExceptionStatus,
    cleared: bool,
    action: ExceptionAction,
) -> Result<ExceptionStatus, TransitionError> {
    use ExceptionAction as A;
    use ExceptionStatus as S;
    match (status, action) {
        (S::Open, A::Acknowledge) => Ok(S::Acknowledged),
        (S::Acknowledged, A::Acknowledge) => Err(TransitionError::Already("acknowledged")),
        (S::Open | S::Acknowledged, A::Resolve | A::Clear) => Ok(S::Resolved),
        (S::Open | S::Acknowledged, A::Reopen) => Err(TransitionError::NotCleared),
        (S::Resolved, A::Reopen) if cleared => Ok(S::Open),
        (S::Resolved, A::Reopen) => Err(TransitionError::ResolvedByPerson),
        (S::Resolved, A::Acknowledge | A::Resolve | A::Clear) => {
            Err(TransitionError::Already("resolved"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_allowed_ones() {
        for class in ExceptionClass::ALL {
            assert_eq!(ExceptionClass::parse(class.as_str()), Ok(class));
        }
        let error = ExceptionClass::parse("missed").unwrap_err().to_string();
        assert!(
            error.contains("missed_webhook") && error.contains("\"missed\""),
            "{error}"
        );
        assert!(ExceptionStatus::parse("closed").is_err());
    }

    #[test]
    fn the_workflow_goes_forward_and_a_persons_resolution_is_final() {
        use ExceptionAction as A;
        use ExceptionStatus as S;
        assert_eq!(
            next_status(S::Open, false, A::Acknowledge),
            Ok(S::Acknowledged)
        );
        assert_eq!(
            next_status(S::Acknowledged, false, A::Resolve),
            Ok(S::Resolved)
        );
        assert_eq!(next_status(S::Open, false, A::Resolve), Ok(S::Resolved));
        assert_eq!(next_status(S::Open, false, A::Clear), Ok(S::Resolved));
        assert_eq!(next_status(S::Resolved, true, A::Reopen), Ok(S::Open));
        assert_eq!(
            next_status(S::Resolved, false, A::Reopen),
            Err(TransitionError::ResolvedByPerson)
        );
        assert!(next_status(S::Resolved, false, A::Acknowledge).is_err());
        assert!(next_status(S::Acknowledged, false, A::Acknowledge).is_err());
    }
}
