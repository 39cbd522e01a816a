//! The public names of attribution (`docs/attribution.md`): gap classes, statuses,
//! how a gap was resolved, why evidence is orphaned, and the kinds of transaction.

use std::fmt;
use std::str::FromStr;

/// Why a revenue-bearing transaction (or a piece of evidence) is at risk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GapClass {
    /// Evidence says Helcim answered `is-valid-partner-token: 0`.
    TokenRejected,
    /// Evidence says the request carried no partner token.
    TokenMissing,
    /// No evidence at all once the grace period passed.
    Unattributed,
    /// Evidence of an approved payment that matches no ledger transaction.
    OrphanEvidence,
}

/// Which gap statuses exist, and what they mean for the money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GapStatus {
    Open,
    /// A person has seen it; still at risk.
    Acknowledged,
    /// Evidence arrived, or a person resolved it with a note.
    Resolved,
    /// The month closed with it open: the share is lost.
    Expired,
}

/// How a resolved gap was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resolution {
    Evidence,
    Person,
}

/// Why evidence is an `orphan_evidence` gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrphanReason {
    /// No ledger transaction matches it after the grace period.
    NoTransaction,
    /// Several transactions match its invoice, amount and currency; none is chosen.
    Ambiguous,
    /// Its API token belongs to no registered account.
    UnregisteredAccount,
}

/// What a ledger transaction means for the revenue share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An approved purchase or capture: earns a share, so it can be a gap.
    Revenue,
    /// An approved refund or reverse: reported beside the month's volume.
    Adjustment,
    /// Declines, verifies, preauths and anything unknown: no revenue.
    None,
}

impl Kind {
    /// From the ledger's `type` (lower case) and `status` (upper case) columns.
    pub fn of(transaction_type: &str, status: &str) -> Kind {
        if !status.eq_ignore_ascii_case("APPROVED") && !status.eq_ignore_ascii_case("APPROVAL") {
            return Kind::None;
        }
        match transaction_type.to_ascii_lowercase().as_str() {
            "purchase" | "capture" => Kind::Revenue,
            "refund" | "reverse" => Kind::Adjustment,
            _ => Kind::None,
        }
    }
}

/// A name that is not one of a set: the error says which names are valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {given:?}: expected one of {expected}")]
pub struct UnknownName {
    pub what: &'static str,
    pub given: String,
    pub expected: String,
}

macro_rules! named {
    ($ty:ident, $what:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = UnknownName;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                $ty::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == text)
                    .ok_or_else(|| UnknownName {
                        what: $what,
                        given: text.chars().take(64).collect(),
                        expected: $ty::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", "),
                    })
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}

named!(GapClass, "class", {
    TokenRejected => "token_rejected",
    TokenMissing => "token_missing",
    Unattributed => "unattributed",
    OrphanEvidence => "orphan_evidence",
});

named!(GapStatus, "status", {
    Open => "open",
    Acknowledged => "acknowledged",
    Resolved => "resolved",
    Expired => "expired",
});

named!(Resolution, "resolution", {
    Evidence => "evidence",
    Person => "person",
});

named!(OrphanReason, "orphan reason", {
    NoTransaction => "no_transaction",
    Ambiguous => "ambiguous",
    UnregisteredAccount => "unregistered_account",
});

impl GapClass {
    /// Classes whose money counts as at risk in the report (an orphan's money is
    /// not in the ledger, so it is shown beside, not added).
    pub fn puts_money_at_risk(self) -> bool {
        !matches!(self, GapClass::OrphanEvidence)
    }
}

impl GapStatus {
    /// Open and acknowledged gaps can still be fixed before the close.
    pub fn is_live(self) -> bool {
        matches!(self, GapStatus::Open | GapStatus::Acknowledged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_errors_list_the_valid_ones() {
        for class in GapClass::ALL {
            assert_eq!(class.as_str().parse::<GapClass>().unwrap(), *class);
        }
        let err = "lost".parse::<GapStatus>().unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown status \"lost\": expected one of open, acknowledged, resolved, expired"
        );
    }

    #[test]
    fn only_approved_purchases_and_captures_are_revenue() {
        assert_eq!(Kind::of("purchase", "APPROVED"), Kind::Revenue);
        assert_eq!(Kind::of("capture", "APPROVED"), Kind::Revenue);
        assert_eq!(Kind::of("purchase", "DECLINED"), Kind::None);
        assert_eq!(Kind::of("preauth", "APPROVED"), Kind::None);
        assert_eq!(Kind::of("verify", "APPROVED"), Kind::None);
        assert_eq!(Kind::of("refund", "APPROVED"), Kind::Adjustment);
        assert_eq!(Kind::of("reverse", "APPROVED"), Kind::Adjustment);
        assert_eq!(Kind::of("withdraw", "APPROVED"), Kind::None);
    }
}
