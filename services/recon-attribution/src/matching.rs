//! Which ledger transaction a piece of evidence is about (docs/attribution.md,
//! "Matching"). Pure: the engine loads the evidence and the transactions that could
//! match it, and stores what this decides.
//!
//! The result for one piece of evidence depends only on the set of transactions, never
//! on their order, and names at most one transaction: with several candidates the
//! evidence is `Ambiguous` and lists them all, so nobody's share is guessed.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// What matching needs to know of one piece of evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceKey {
    pub id: i64,
    /// None: the gateway saw an API token no registered account has.
    pub account_id: Option<String>,
    pub transaction_id: Option<i64>,
    pub invoice_number: Option<String>,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    pub observed_at: DateTime<Utc>,
}

/// What matching needs to know of one stored ledger transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerKey {
    pub account_id: String,
    pub transaction_id: i64,
    pub invoice_number: Option<String>,
    pub amount_minor: i64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
}

/// How evidence was tied to its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// The evidence carried Helcim's transaction id.
    TransactionId,
    /// Same account, invoice number, amount and currency, within the match window.
    Invoice,
}

impl Method {
    /// The name stored in `attribution_matches.method`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::TransactionId => "transaction_id",
            Method::Invoice => "invoice",
        }
    }

    pub fn parse(text: &str) -> Option<Method> {
        match text {
            "transaction_id" => Some(Method::TransactionId),
            "invoice" => Some(Method::Invoice),
            _ => None,
        }
    }
}

/// What became of one piece of evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    Matched {
        transaction_id: i64,
        method: Method,
    },
    /// Several transactions fit its invoice, amount and currency: their ids, sorted.
    Ambiguous(Vec<i64>),
    /// No transaction (yet).
    Unmatched,
    /// Its account is not registered: never matched.
    Unregistered,
}

impl Match {
    /// The name stored in `attribution_matches.state` (unregistered evidence is
    /// stored `unmatched` with no account).
    pub fn state(&self) -> &'static str {
        match self {
            Match::Matched { .. } => "matched",
            Match::Ambiguous(_) => "ambiguous",
            Match::Unmatched | Match::Unregistered => "unmatched",
        }
    }

    pub fn transaction_id(&self) -> Option<i64> {
        match self {
            Match::Matched { transaction_id, .. } => Some(*transaction_id),
            _ => None,
        }
    }
}

/// Matches one piece of evidence against `ledger` (which may hold unrelated rows).
pub fn match_one(evidence: &EvidenceKey, ledger: &[LedgerKey], window: Duration) -> Match {
    let Some(account) = evidence.account_id.as_deref() else {
        return Match::Unregistered;
    };
    let same_account = ledger.iter().filter(|t| t.account_id == account);
    if let Some(id) = evidence.transaction_id {
        // An id was given: it is the answer or nothing. Falling back to the invoice
        // would let a wrong id borrow another payment's evidence.
        return if same_account.clone().any(|t| t.transaction_id == id) {
            Match::Matched {
                transaction_id: id,
                method: Method::TransactionId,
            }
        } else {
            Match::Unmatched
        };
    }
    let (Some(invoice), Some(amount), Some(currency)) = (
        evidence.invoice_number.as_deref(),
        evidence.amount_minor,
        evidence.currency.as_deref(),
    ) else {
        return Match::Unmatched;
    };
    let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
    let mut candidates: Vec<i64> = same_account
        .filter(|t| {
            t.invoice_number.as_deref() == Some(invoice)
                && t.amount_minor == amount
                && t.currency.trim().eq_ignore_ascii_case(currency.trim())
                && (t.created_at - evidence.observed_at).abs() <= window
        })
        .map(|t| t.transaction_id)
        .collect();
    candidates.sort_unstable();
    candidates.dedup();
    match candidates.as_slice() {
        [] => Match::Unmatched,
        [only] => Match::Matched {
            transaction_id: *only,
            method: Method::Invoice,
        },
        _ => Match::Ambiguous(candidates),
    }
}

/// Matches every piece of evidence, keyed by evidence id.
pub fn match_all(
    evidence: &[EvidenceKey],
    ledger: &[LedgerKey],
    window: Duration,
) -> BTreeMap<i64, Match> {
    evidence
        .iter()
        .map(|e| (e.id, match_one(e, ledger, window)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_790_000_000 + secs, 0).unwrap()
    }

    fn tx(account: &str, id: i64, invoice: Option<&str>, amount: i64, created: i64) -> LedgerKey {
        LedgerKey {
            account_id: account.into(),
            transaction_id: id,
            invoice_number: invoice.map(Into::into),
            amount_minor: amount,
            currency: "CAD".into(),
            created_at: at(created),
        }
    }

    fn by_invoice(id: i64, account: &str, invoice: &str, amount: i64, seen: i64) -> EvidenceKey {
        EvidenceKey {
            id,
            account_id: Some(account.into()),
            transaction_id: None,
            invoice_number: Some(invoice.into()),
            amount_minor: Some(amount),
            currency: Some("CAD".into()),
            observed_at: at(seen),
        }
    }

    #[test]
    fn the_window_includes_its_edges_and_nothing_beyond() {
        let ledger = [tx("m1", 7, Some("INV-1"), 1999, 0)];
        for seen in [-3600, 3600, 0] {
            assert_eq!(
                match_one(&by_invoice(1, "m1", "INV-1", 1999, seen), &ledger, HOUR),
                Match::Matched {
                    transaction_id: 7,
                    method: Method::Invoice
                },
                "observed {seen}s from the transaction"
            );
        }
        for seen in [-3601, 3601] {
            assert_eq!(
                match_one(&by_invoice(1, "m1", "INV-1", 1999, seen), &ledger, HOUR),
                Match::Unmatched,
                "observed {seen}s from the transaction"
            );
        }
    }

    #[test]
    fn invoice_matching_needs_the_same_account_amount_currency_and_exact_invoice() {
        let mut usd = tx("m1", 4, Some("INV-1"), 1999, 0);
        usd.currency = "USD".into();
        let ledger = [
            tx("m2", 1, Some("INV-1"), 1999, 0),
            tx("m1", 2, Some("INV-1"), 2000, 0),
            tx("m1", 3, Some("inv-1"), 1999, 0),
            usd,
            tx("m1", 5, None, 1999, 0),
        ];
        assert_eq!(
            match_one(&by_invoice(1, "m1", "INV-1", 1999, 0), &ledger, HOUR),
            Match::Unmatched
        );
    }

    #[test]
    fn two_candidates_are_ambiguous_and_listed_in_order() {
        let ledger = [
            tx("m1", 30, Some("INV-1"), 1999, 10),
            tx("m1", 20, Some("INV-1"), 1999, -10),
        ];
        assert_eq!(
            match_one(&by_invoice(1, "m1", "INV-1", 1999, 0), &ledger, HOUR),
            Match::Ambiguous(vec![20, 30])
        );
    }

    #[test]
    fn an_id_never_falls_back_to_the_invoice_and_an_unknown_account_never_matches() {
        let ledger = [tx("m1", 7, Some("INV-1"), 1999, 0)];
        let mut wrong_id = by_invoice(1, "m1", "INV-1", 1999, 0);
        wrong_id.transaction_id = Some(8);
        assert_eq!(match_one(&wrong_id, &ledger, HOUR), Match::Unmatched);
        let mut unregistered = by_invoice(2, "m1", "INV-1", 1999, 0);
        unregistered.account_id = None;
        unregistered.transaction_id = Some(7);
        assert_eq!(match_one(&unregistered, &ledger, HOUR), Match::Unregistered);
        let mut other_account = by_invoice(3, "m2", "INV-1", 1999, 0);
        other_account.transaction_id = Some(7);
        assert_eq!(match_one(&other_account, &ledger, HOUR), Match::Unmatched);
    }

    #[test]
    fn evidence_without_an_id_and_without_an_amount_matches_nothing() {
        let ledger = [tx("m1", 7, Some("INV-1"), 1999, 0)];
        let mut bare = by_invoice(1, "m1", "INV-1", 1999, 0);
        bare.amount_minor = None;
        assert_eq!(match_one(&bare, &ledger, HOUR), Match::Unmatched);
    }

    // Small domains so that collisions (duplicates, shared invoices) are common.
    fn ledger_strategy() -> impl Strategy<Value = Vec<LedgerKey>> {
        proptest::collection::vec(
            (
                0..2_usize,
                1..12_i64,
                proptest::option::of(0..3_u8),
                1..3_i64,
                -5000..5000_i64,
            ),
            0..12,
        )
        .prop_map(|rows| {
            let mut seen = std::collections::HashSet::new();
            rows.into_iter()
                .map(|(account, id, invoice, amount, created)| {
                    tx(
                        ["m1", "m2"][account],
                        id,
                        invoice.map(|i| format!("INV-{i}")).as_deref(),
                        amount * 100,
                        created,
                    )
                })
                // The ledger's primary key: one row per (account, transaction id).
                .filter(|t| seen.insert((t.account_id.clone(), t.transaction_id)))
                .collect()
        })
    }

    fn evidence_strategy() -> impl Strategy<Value = Vec<EvidenceKey>> {
        proptest::collection::vec(
            (
                proptest::option::of(0..2_usize),
                proptest::option::of(1..12_i64),
                proptest::option::of(0..3_u8),
                1..3_i64,
                -5000..5000_i64,
            ),
            0..12,
        )
        .prop_map(|rows| {
            rows.into_iter()
                .enumerate()
                .map(|(n, (account, id, invoice, amount, seen))| EvidenceKey {
                    id: n as i64 + 1,
                    account_id: account.map(|a| ["m1", "m2"][a].to_string()),
                    transaction_id: id,
                    invoice_number: invoice.map(|i| format!("INV-{i}")),
                    amount_minor: Some(amount * 100),
                    currency: Some("CAD".into()),
                    observed_at: at(seen),
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn a_match_never_depends_on_the_order_of_evidence_or_transactions(
            ledger in ledger_strategy(),
            evidence in evidence_strategy(),
            seed in any::<u64>(),
        ) {
            let expected = match_all(&evidence, &ledger, HOUR);
            let mut rng = rand_shuffle::Lcg(seed);
            let mut ledger2 = ledger.clone();
            let mut evidence2 = evidence.clone();
            rng.shuffle(&mut ledger2);
            rng.shuffle(&mut evidence2);
            prop_assert_eq!(match_all(&evidence2, &ledger2, HOUR), expected);
        }

        #[test]
        fn no_evidence_matches_two_transactions_and_each_match_fits_the_rules(
            ledger in ledger_strategy(),
            evidence in evidence_strategy(),
        ) {
            let window = chrono::Duration::hours(1);
            for e in &evidence {
                let fitting: Vec<&LedgerKey> = ledger
                    .iter()
                    .filter(|t| Some(t.account_id.as_str()) == e.account_id.as_deref())
                    .filter(|t| match e.transaction_id {
                        Some(id) => t.transaction_id == id,
                        None => e.invoice_number.is_some()
                            && t.invoice_number == e.invoice_number
                            && Some(t.amount_minor) == e.amount_minor
                            && (t.created_at - e.observed_at).abs() <= window,
                    })
                    .collect();
                let result = match_one(e, &ledger, HOUR);
                match &result {
                    Match::Unregistered => prop_assert!(e.account_id.is_none()),
                    Match::Matched { transaction_id, method } => {
                        prop_assert_eq!(fitting.len(), 1);
                        prop_assert_eq!(fitting[0].transaction_id, *transaction_id);
                        let expected = if e.transaction_id.is_some() {
                            Method::TransactionId
                        } else {
                            Method::Invoice
                        };
                        prop_assert_eq!(*method, expected);
                    }
                    Match::Ambiguous(ids) => {
                        // Only invoice matching can be ambiguous: an id names one row.
                        prop_assert!(e.transaction_id.is_none());
                        let mut expected: Vec<i64> =
                            fitting.iter().map(|t| t.transaction_id).collect();
                        expected.sort_unstable();
                        prop_assert!(ids.len() >= 2);
                        prop_assert_eq!(ids, &expected);
                    }
                    Match::Unmatched => prop_assert!(e.account_id.is_none() || fitting.is_empty()),
                }
            }
        }

        #[test]
        fn a_duplicated_payment_makes_invoice_evidence_ambiguous(
            ledger in ledger_strategy(),
            e in evidence_strategy().prop_filter("some evidence", |e| !e.is_empty()),
        ) {
            let mut e = e[0].clone();
            e.account_id = Some("m1".into());
            e.transaction_id = None;
            e.invoice_number.get_or_insert_with(|| "INV-0".into());
            let twin = |id| LedgerKey {
                account_id: "m1".into(),
                transaction_id: id,
                invoice_number: e.invoice_number.clone(),
                amount_minor: e.amount_minor.unwrap_or_default(),
                currency: "CAD".into(),
                created_at: e.observed_at,
            };
            let mut ledger: Vec<LedgerKey> =
                ledger.into_iter().filter(|t| t.transaction_id < 100).collect();
            ledger.push(twin(100));
            ledger.push(twin(101));
            match match_one(&e, &ledger, HOUR) {
                Match::Ambiguous(ids) => {
                    prop_assert!(ids.contains(&100) && ids.contains(&101));
                }
                other => prop_assert!(false, "expected ambiguous, got {:?}", other),
            }
        }

        #[test]
        fn id_matching_ignores_the_invoice(
            invoice in proptest::option::of("[A-Z0-9-]{0,8}"),
            amount in proptest::option::of(0..10_000_i64),
            seen in -100_000..100_000_i64,
        ) {
            let ledger = [tx("m1", 7, Some("INV-1"), 1999, 0)];
            let e = EvidenceKey {
                id: 1,
                account_id: Some("m1".into()),
                transaction_id: Some(7),
                invoice_number: invoice,
                amount_minor: amount,
                currency: Some("USD".into()),
                observed_at: at(seen),
            };
            prop_assert_eq!(
                match_one(&e, &ledger, HOUR),
                Match::Matched { transaction_id: 7, method: Method::TransactionId }
            );
        }
    }

    /// A tiny deterministic shuffle, so the property needs no extra dependency.
    mod rand_shuffle {
        pub struct Lcg(pub u64);

        impl Lcg {
            fn next(&mut self) -> u64 {
                self.0 = self
                    .0
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                self.0 >> 33
            }

            pub fn shuffle<T>(&mut self, items: &mut [T]) {
                for i in (1..items.len()).rev() {
                    let j = (self.next() % (i as u64 + 1)) as usize;
                    items.swap(i, j);
                }
            }
        }
    }
}
