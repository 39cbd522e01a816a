//! What a transaction's evidence says about its revenue share, when evidence that
//! matches nothing becomes a gap of its own, and what the engine does to an existing
//! gap row when the verdict changes (docs/attribution.md, "Gap classes" and "Gap
//! statuses"). Pure: the engine loads the rows and applies the decision.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::matching::Match;
use crate::model::{GapClass, GapStatus, OrphanReason, Resolution};

/// What classification needs to know of one piece of evidence matched to the
/// transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenEvidence {
    pub id: i64,
    /// Helcim's `is-valid-partner-token`: 1, 0, or None when it gave none.
    pub is_valid_partner_token: Option<i16>,
    pub partner_token_sent: bool,
    pub partner_token_added: bool,
}

/// The verdict on one revenue-bearing transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classification {
    /// Helcim accepted the partner token on this evidence.
    Attributed { evidence_id: i64 },
    /// At risk; `evidence_id` is the evidence that decided the class (None for
    /// `unattributed`).
    Gap {
        class: GapClass,
        evidence_id: Option<i64>,
    },
    /// No deciding evidence yet and the grace period runs until `due_at`.
    Pending { due_at: DateTime<Utc> },
}

fn after(at: DateTime<Utc>, span: Duration) -> DateTime<Utc> {
    at + chrono::Duration::from_std(span).unwrap_or(chrono::Duration::MAX)
}

/// Classifies a revenue-bearing transaction from the evidence matched to it.
///
/// An accepted token anywhere wins (Helcim attributed the payment, whatever else was
/// recorded); then a rejected token; then a request that carried none. Evidence with a
/// token but no answer decides nothing: the transaction waits out its grace period
/// like one without evidence. Ties go to the lowest evidence id, so the verdict does
/// not depend on load order.
pub fn classify(
    evidence: &[TokenEvidence],
    stored_at: DateTime<Utc>,
    now: DateTime<Utc>,
    grace: Duration,
) -> Classification {
    let lowest = |keep: &dyn Fn(&TokenEvidence) -> bool| {
        evidence.iter().filter(|e| keep(e)).map(|e| e.id).min()
    };
    if let Some(id) = lowest(&|e| e.is_valid_partner_token == Some(1)) {
        return Classification::Attributed { evidence_id: id };
    }
    if let Some(id) = lowest(&|e| e.is_valid_partner_token == Some(0)) {
        return Classification::Gap {
            class: GapClass::TokenRejected,
            evidence_id: Some(id),
        };
    }
    if let Some(id) = lowest(&|e| !e.partner_token_sent && !e.partner_token_added) {
        return Classification::Gap {
            class: GapClass::TokenMissing,
            evidence_id: Some(id),
        };
    }
    let due_at = after(stored_at, grace);
    if now >= due_at {
        Classification::Gap {
            class: GapClass::Unattributed,
            evidence_id: None,
        }
    } else {
        Classification::Pending { due_at }
    }
}

/// Whether evidence stands for an approved payment: a receipt (the integration
/// reports payments only), or a purchase or capture Helcim answered with a 2xx. Only
/// such evidence is an orphan when it matches nothing: a failed request made no
/// payment to miss.
pub fn is_approved_payment(
    source: &str,
    outcome: &str,
    response_status: Option<i16>,
    endpoint: &str,
) -> bool {
    match source {
        "receipt" => true,
        "gateway" => {
            outcome == "answered"
                && response_status.is_some_and(|s| (200..300).contains(&s))
                && matches!(endpoint, "payment/purchase" | "payment/capture")
        }
        _ => false,
    }
}

/// What evidence that matched no single transaction is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrphanVerdict {
    /// Not an orphan: it matched, or it is not evidence of an approved payment.
    No,
    /// An orphan, for this reason.
    Orphan(OrphanReason),
    /// Could still match: the grace period runs until `due_at`.
    Pending { due_at: DateTime<Utc> },
}

/// Ambiguous evidence is reported at once (waiting will not make the duplicate go
/// away); evidence that matches nothing waits out the grace period, since its
/// transaction's webhook may simply be late.
pub fn orphan(
    matched: &Match,
    approved_payment: bool,
    recorded_at: DateTime<Utc>,
    now: DateTime<Utc>,
    grace: Duration,
) -> OrphanVerdict {
    let reason = match matched {
        Match::Matched { .. } => return OrphanVerdict::No,
        Match::Ambiguous(_) => return OrphanVerdict::Orphan(OrphanReason::Ambiguous),
        Match::Unmatched => OrphanReason::NoTransaction,
        Match::Unregistered => OrphanReason::UnregisteredAccount,
    };
    if !approved_payment {
        return OrphanVerdict::No;
    }
    let due_at = after(recorded_at, grace);
    if now >= due_at {
        OrphanVerdict::Orphan(reason)
    } else {
        OrphanVerdict::Pending { due_at }
    }
}

/// The gap row as it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GapState {
    pub status: GapStatus,
    pub class: GapClass,
    pub reason: Option<OrphanReason>,
    pub resolution: Option<Resolution>,
}

/// What the evidence now says about the subject of a gap (a transaction, or a piece
/// of orphaned evidence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Desired {
    /// At risk, for this class (and, for orphans, reason).
    Gap {
        class: GapClass,
        reason: Option<OrphanReason>,
    },
    /// Fine: attributed by this evidence (for an orphan: it now matches).
    Cleared { evidence_id: i64 },
    /// Nothing decided yet (in its grace period, or not something that can be a gap).
    Undecided,
}

/// What to do to the gap row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Nothing,
    /// Insert a gap with this status (`open`, or `expired` when its month has closed).
    Insert {
        status: GapStatus,
    },
    /// Change the class (or an orphan's reason) of a live gap.
    Reclassify {
        class: GapClass,
        reason: Option<OrphanReason>,
    },
    /// Evidence arrived in time: resolved, by evidence.
    ResolveByEvidence {
        evidence_id: i64,
    },
    /// A gap resolved by evidence that no longer says so (an invoice match became
    /// ambiguous when a second payment arrived): open again, with this class.
    Reopen {
        class: GapClass,
        reason: Option<OrphanReason>,
    },
    /// Evidence arrived after the close: the gap stays, a note is kept beside it.
    PostCloseNote {
        evidence_id: i64,
    },
}

/// The verdict stored for a transaction (`attribution_transactions.verdict`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pending,
    Attributed,
    Gap(GapClass),
    Waived(GapClass),
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pending => "pending",
            Verdict::Attributed => "attributed",
            Verdict::Gap(_) => "gap",
            Verdict::Waived(_) => "waived",
        }
    }

    pub fn gap_class(self) -> Option<GapClass> {
        match self {
            Verdict::Gap(class) | Verdict::Waived(class) => Some(class),
            _ => None,
        }
    }
}

/// The engine's decision for one subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub step: Step,
    /// Meaningful for transactions only (orphans have no verdict row).
    pub verdict: Verdict,
}

/// The gap lifecycle: given the gap row (if any), what the evidence now says, the
/// time and the month's close, what changes.
///
/// - A gap is never withdrawn silently: once open it leaves only by evidence
///   (resolved), a person (resolved), or the close (expired).
/// - After the close nothing is rewritten: evidence that would have resolved the gap
///   becomes a post-close note and the share stays lost. The engine treats the close
///   as passed from the deadline on, whether or not the close has marked the gap
///   expired yet, so the outcome does not depend on which runs first.
/// - A person's resolution stands; the transaction is `waived` unless evidence says
///   it was attributed after all.
/// - A resolution by evidence stands only while the evidence says so: a gap whose
///   evidence no longer matches (an invoice match turned ambiguous) reopens before
///   the close, so money at risk always has a live gap to see and work.
pub fn decide(
    existing: Option<GapState>,
    desired: Desired,
    now: DateTime<Utc>,
    deadline: DateTime<Utc>,
) -> Decision {
    let closed = now >= deadline;
    let Some(gap) = existing else {
        return match desired {
            Desired::Gap { class, .. } => Decision {
                step: Step::Insert {
                    status: if closed {
                        GapStatus::Expired
                    } else {
                        GapStatus::Open
                    },
                },
                verdict: Verdict::Gap(class),
            },
            Desired::Cleared { .. } => Decision {
                step: Step::Nothing,
                verdict: Verdict::Attributed,
            },
            Desired::Undecided => Decision {
                step: Step::Nothing,
                verdict: Verdict::Pending,
            },
        };
    };
    let keep = |verdict| Decision {
        step: Step::Nothing,
        verdict,
    };
    match (gap.status, desired) {
        (GapStatus::Resolved, Desired::Cleared { .. }) => keep(Verdict::Attributed),
        (GapStatus::Resolved, _) => match gap.resolution {
            Some(Resolution::Person) => keep(Verdict::Waived(gap.class)),
            // Resolved by evidence that no longer says so (its invoice match became
            // ambiguous): the money is at risk again, so the gap is live again before
            // the close; after it, nothing is rewritten and the money stays at risk.
            _ => match desired {
                Desired::Gap { class, reason } if !closed => Decision {
                    step: Step::Reopen { class, reason },
                    verdict: Verdict::Gap(class),
                },
                Desired::Gap { class, .. } => keep(Verdict::Gap(class)),
                _ => keep(Verdict::Pending),
            },
        },
        (GapStatus::Expired, Desired::Cleared { evidence_id }) => Decision {
            step: Step::PostCloseNote { evidence_id },
            verdict: Verdict::Gap(gap.class),
        },
        (GapStatus::Expired, _) => keep(Verdict::Gap(gap.class)),
        (GapStatus::Open | GapStatus::Acknowledged, Desired::Cleared { evidence_id }) => Decision {
            step: if closed {
                Step::PostCloseNote { evidence_id }
            } else {
                Step::ResolveByEvidence { evidence_id }
            },
            verdict: if closed {
                Verdict::Gap(gap.class)
            } else {
                Verdict::Attributed
            },
        },
        (GapStatus::Open | GapStatus::Acknowledged, Desired::Gap { class, reason }) => {
            if class == gap.class && reason == gap.reason {
                keep(Verdict::Gap(class))
            } else {
                Decision {
                    step: Step::Reclassify { class, reason },
                    verdict: Verdict::Gap(class),
                }
            }
        }
        (GapStatus::Open | GapStatus::Acknowledged, Desired::Undecided) => {
            keep(Verdict::Gap(gap.class))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const GRACE: Duration = Duration::from_secs(600);

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_790_000_000 + secs, 0).unwrap()
    }

    fn ev(id: i64, valid: Option<i16>, sent: bool, added: bool) -> TokenEvidence {
        TokenEvidence {
            id,
            is_valid_partner_token: valid,
            partner_token_sent: sent,
            partner_token_added: added,
        }
    }

    #[test]
    fn an_accepted_token_anywhere_attributes_by_the_lowest_such_evidence() {
        let evidence = [
            ev(9, Some(0), true, false),
            ev(7, Some(1), true, false),
            ev(5, Some(1), false, true),
        ];
        assert_eq!(
            classify(&evidence, at(0), at(0), GRACE),
            Classification::Attributed { evidence_id: 5 }
        );
    }

    #[test]
    fn a_rejected_token_beats_a_missing_one() {
        let evidence = [ev(3, None, false, false), ev(8, Some(0), true, false)];
        assert_eq!(
            classify(&evidence, at(0), at(0), GRACE),
            Classification::Gap {
                class: GapClass::TokenRejected,
                evidence_id: Some(8)
            }
        );
    }

    #[test]
    fn a_request_without_a_partner_token_is_token_missing_at_once() {
        assert_eq!(
            classify(&[ev(3, None, false, false)], at(0), at(0), GRACE),
            Classification::Gap {
                class: GapClass::TokenMissing,
                evidence_id: Some(3)
            }
        );
        // The gateway added one: not missing.
        assert_eq!(
            classify(&[ev(3, None, false, true)], at(0), at(0), GRACE),
            Classification::Pending { due_at: at(600) }
        );
    }

    #[test]
    fn without_deciding_evidence_the_grace_period_decides() {
        let unanswered = [ev(4, None, true, false)];
        for evidence in [&[][..], &unanswered[..]] {
            assert_eq!(
                classify(evidence, at(0), at(599), GRACE),
                Classification::Pending { due_at: at(600) }
            );
            assert_eq!(
                classify(evidence, at(0), at(600), GRACE),
                Classification::Gap {
                    class: GapClass::Unattributed,
                    evidence_id: None
                }
            );
        }
    }

    #[test]
    fn approved_payments_are_receipts_and_answered_purchases_and_captures() {
        assert!(is_approved_payment("receipt", "reported", None, "receipt"));
        assert!(is_approved_payment(
            "gateway",
            "answered",
            Some(200),
            "payment/purchase"
        ));
        assert!(is_approved_payment(
            "gateway",
            "answered",
            Some(201),
            "payment/capture"
        ));
        assert!(!is_approved_payment(
            "gateway",
            "answered",
            Some(400),
            "payment/purchase"
        ));
        assert!(!is_approved_payment(
            "gateway",
            "timeout",
            None,
            "payment/purchase"
        ));
        assert!(!is_approved_payment(
            "gateway",
            "answered",
            Some(200),
            "payment/refund"
        ));
        assert!(!is_approved_payment(
            "gateway",
            "answered",
            Some(200),
            "helcim-pay/initialize"
        ));
    }

    #[test]
    fn orphans_wait_out_the_grace_period_but_ambiguity_is_reported_at_once() {
        let unmatched = Match::Unmatched;
        assert_eq!(
            orphan(&unmatched, true, at(0), at(599), GRACE),
            OrphanVerdict::Pending { due_at: at(600) }
        );
        assert_eq!(
            orphan(&unmatched, true, at(0), at(600), GRACE),
            OrphanVerdict::Orphan(OrphanReason::NoTransaction)
        );
        assert_eq!(
            orphan(&unmatched, false, at(0), at(6000), GRACE),
            OrphanVerdict::No
        );
        assert_eq!(
            orphan(&Match::Unregistered, true, at(0), at(600), GRACE),
            OrphanVerdict::Orphan(OrphanReason::UnregisteredAccount)
        );
        assert_eq!(
            orphan(&Match::Ambiguous(vec![1, 2]), false, at(0), at(0), GRACE),
            OrphanVerdict::Orphan(OrphanReason::Ambiguous)
        );
        let matched = Match::Matched {
            transaction_id: 1,
            method: crate::matching::Method::Invoice,
        };
        assert_eq!(
            orphan(&matched, true, at(0), at(6000), GRACE),
            OrphanVerdict::No
        );
    }

    fn gap(status: GapStatus, class: GapClass, resolution: Option<Resolution>) -> GapState {
        GapState {
            status,
            class,
            reason: None,
            resolution,
        }
    }

    const MISSING: Desired = Desired::Gap {
        class: GapClass::TokenMissing,
        reason: None,
    };
    const REJECTED: Desired = Desired::Gap {
        class: GapClass::TokenRejected,
        reason: None,
    };
    const CLEARED: Desired = Desired::Cleared { evidence_id: 42 };

    fn before_close(existing: Option<GapState>, desired: Desired) -> Decision {
        decide(existing, desired, at(0), at(100))
    }

    fn after_close(existing: Option<GapState>, desired: Desired) -> Decision {
        decide(existing, desired, at(100), at(100))
    }

    #[test]
    fn no_gap_and_a_class_inserts_an_open_gap_or_an_expired_one_after_the_close() {
        assert_eq!(
            before_close(None, MISSING),
            Decision {
                step: Step::Insert {
                    status: GapStatus::Open
                },
                verdict: Verdict::Gap(GapClass::TokenMissing)
            }
        );
        assert_eq!(
            after_close(None, MISSING).step,
            Step::Insert {
                status: GapStatus::Expired
            }
        );
    }

    #[test]
    fn no_gap_and_no_class_changes_nothing() {
        assert_eq!(
            before_close(None, CLEARED),
            Decision {
                step: Step::Nothing,
                verdict: Verdict::Attributed
            }
        );
        assert_eq!(
            before_close(None, Desired::Undecided),
            Decision {
                step: Step::Nothing,
                verdict: Verdict::Pending
            }
        );
    }

    #[test]
    fn a_live_gap_changes_class_when_the_evidence_changes() {
        for status in [GapStatus::Open, GapStatus::Acknowledged] {
            let existing = gap(status, GapClass::TokenMissing, None);
            assert_eq!(
                before_close(Some(existing), REJECTED),
                Decision {
                    step: Step::Reclassify {
                        class: GapClass::TokenRejected,
                        reason: None
                    },
                    verdict: Verdict::Gap(GapClass::TokenRejected)
                }
            );
            assert_eq!(before_close(Some(existing), MISSING).step, Step::Nothing);
            assert_eq!(
                before_close(Some(existing), Desired::Undecided),
                Decision {
                    step: Step::Nothing,
                    verdict: Verdict::Gap(GapClass::TokenMissing)
                }
            );
        }
    }

    #[test]
    fn an_orphans_reason_change_is_a_reclassification() {
        let existing = GapState {
            status: GapStatus::Open,
            class: GapClass::OrphanEvidence,
            reason: Some(OrphanReason::Ambiguous),
            resolution: None,
        };
        let desired = Desired::Gap {
            class: GapClass::OrphanEvidence,
            reason: Some(OrphanReason::NoTransaction),
        };
        assert_eq!(
            before_close(Some(existing), desired).step,
            Step::Reclassify {
                class: GapClass::OrphanEvidence,
                reason: Some(OrphanReason::NoTransaction)
            }
        );
    }

    #[test]
    fn evidence_before_the_close_resolves_a_live_gap() {
        for status in [GapStatus::Open, GapStatus::Acknowledged] {
            assert_eq!(
                before_close(Some(gap(status, GapClass::Unattributed, None)), CLEARED),
                Decision {
                    step: Step::ResolveByEvidence { evidence_id: 42 },
                    verdict: Verdict::Attributed
                }
            );
        }
    }

    #[test]
    fn evidence_after_the_close_is_a_note_and_the_share_stays_lost() {
        let expired = gap(GapStatus::Expired, GapClass::Unattributed, None);
        let still_open = gap(GapStatus::Open, GapClass::Unattributed, None);
        let note = Decision {
            step: Step::PostCloseNote { evidence_id: 42 },
            verdict: Verdict::Gap(GapClass::Unattributed),
        };
        assert_eq!(before_close(Some(expired), CLEARED), note);
        // The close has not marked it expired yet: same outcome.
        assert_eq!(after_close(Some(still_open), CLEARED), note);
        assert_eq!(
            before_close(Some(expired), REJECTED),
            Decision {
                step: Step::Nothing,
                verdict: Verdict::Gap(GapClass::Unattributed)
            }
        );
    }

    #[test]
    fn a_persons_resolution_is_never_reopened() {
        let waived = gap(
            GapStatus::Resolved,
            GapClass::TokenMissing,
            Some(Resolution::Person),
        );
        for desired in [MISSING, REJECTED, Desired::Undecided] {
            assert_eq!(
                before_close(Some(waived), desired),
                Decision {
                    step: Step::Nothing,
                    verdict: Verdict::Waived(GapClass::TokenMissing)
                }
            );
        }
        assert_eq!(
            before_close(Some(waived), CLEARED),
            Decision {
                step: Step::Nothing,
                verdict: Verdict::Attributed
            }
        );
    }

    #[test]
    fn a_gap_resolved_by_evidence_reopens_when_the_evidence_no_longer_says_so() {
        let resolved = gap(
            GapStatus::Resolved,
            GapClass::Unattributed,
            Some(Resolution::Evidence),
        );
        assert_eq!(
            before_close(Some(resolved), CLEARED),
            Decision {
                step: Step::Nothing,
                verdict: Verdict::Attributed
            }
        );
        assert_eq!(
            before_close(Some(resolved), MISSING),
            Decision {
                step: Step::Reopen {
                    class: GapClass::TokenMissing,
                    reason: None
                },
                verdict: Verdict::Gap(GapClass::TokenMissing)
            }
        );
        assert_eq!(
            before_close(Some(resolved), Desired::Undecided).step,
            Step::Nothing
        );
        assert_eq!(after_close(Some(resolved), MISSING).step, Step::Nothing);
    }
}
