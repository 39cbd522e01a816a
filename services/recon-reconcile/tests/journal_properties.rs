//! Properties of the journal's posting rules, with the store's incremental posting
//! modelled exactly: each recorded version of a transaction is upserted as the ledger
//! does (the newest `fetched_at` wins), then the transaction is posted with `plan_in_batch`
//! against its active entry, and a purchase, capture or refund re-posts the reverses of
//! the same card, invoice and amount (now, and as its replaced entry recorded them).
//!
//! - every entry balances per currency, and every correction is the exact reversal of
//!   the entry it reverses;
//! - replaying the same versions in any order ends with the same balances (per batch,
//!   journal account and currency): those of the final rows posted from scratch;
//! - a change A → B followed by B → A returns to the balances of A.

use std::collections::BTreeMap;

use proptest::prelude::*;
use recon_reconcile::journal::{
    Balances, EntryKind, JournalAccount, Line, add_to_balances, entry_amount, is_balanced,
    plan_in_batch, reversal, same_lines, transaction_entry,
};
use recon_reconcile::movement::{
    Candidate, Movement, TransactionFacts, is_reversible_kind, reverses_refund,
};

/// What never changes about a transaction.
#[derive(Debug, Clone)]
struct Identity {
    kind: &'static str,
    token: &'static str,
    invoice: &'static str,
    created: i64,
}

/// One answer about a transaction: its state when it was fetched.
#[derive(Debug, Clone, PartialEq)]
struct Version {
    tx: u64,
    status: &'static str,
    amount_minor: i64,
    currency: &'static str,
    batch: u64,
    fetched_at: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    id: usize,
    kind: EntryKind,
    tx: u64,
    batch: u64,
    reverses: Option<usize>,
    lines: Vec<Line>,
}

/// The ledger's rows and the journal, as the store keeps them.
#[derive(Debug, Default)]
struct Books {
    identities: BTreeMap<u64, Identity>,
    rows: BTreeMap<u64, Version>,
    entries: Vec<Entry>,
}

/// What posting one transaction leaves to do: the reverses to re-post, and the
/// amount and currency of the entry it replaced (when they changed).
type FollowUp = (Vec<u64>, Option<(i64, String)>);

/// Balances per batch as well: a batch's clearing must come out the same too.
type BatchBalances = BTreeMap<u64, Balances>;

impl Books {
    fn new(identities: &[Identity]) -> Books {
        Books {
            identities: identities
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, identity)| (i as u64, identity))
                .collect(),
            ..Books::default()
        }
    }

    /// The ledger's upsert (newer or equal `fetched_at` wins), then the record hook.
    fn record(&mut self, version: &Version) {
        let newer = self
            .rows
            .get(&version.tx)
            .is_none_or(|stored| version.fetched_at >= stored.fetched_at);
        if newer {
            self.rows.insert(version.tx, version.clone());
        }
        self.post_transaction(version.tx);
    }

    fn post_transaction(&mut self, tx: u64) {
        let Some((mut reverses, replaced)) = self.post_one(tx) else {
            return;
        };
        if let Some((amount_minor, currency)) = replaced {
            reverses.extend(self.related_reverses(tx, amount_minor, &currency));
        }
        reverses.sort_unstable();
        reverses.dedup();
        for reverse in reverses {
            self.post_one(reverse);
        }
    }

    /// Reverses of the same card and invoice with this amount and currency.
    fn related_reverses(&self, tx: u64, amount_minor: i64, currency: &str) -> Vec<u64> {
        let me = &self.identities[&tx];
        self.rows
            .values()
            .filter(|o| {
                let other = &self.identities[&o.tx];
                o.tx != tx
                    && other.kind == "reverse"
                    && other.token == me.token
                    && other.invoice == me.invoice
                    && o.amount_minor == amount_minor
                    && o.currency == currency
            })
            .map(|o| o.tx)
            .collect()
    }

    fn movement(&self, rows: &BTreeMap<u64, Version>, tx: u64) -> Movement {
        let row = &rows[&tx];
        let me = &self.identities[&tx];
        let candidate = |v: &Version| {
            let identity = &self.identities[&v.tx];
            Candidate {
                id: v.tx,
                status: v.status,
                kind: identity.kind,
                amount_minor: v.amount_minor,
                currency: v.currency,
                invoice_number: identity.invoice,
                card_token: identity.token,
                created: identity.created,
            }
        };
        let reverses_refund = me.kind == "reverse" && {
            // What the store's query selects; the rule does the rest.
            let others: Vec<Candidate<'_>> = rows
                .values()
                .filter(|o| {
                    let other = &self.identities[&o.tx];
                    o.tx != tx
                        && other.token == me.token
                        && other.invoice == me.invoice
                        && o.amount_minor == row.amount_minor
                        && o.currency == row.currency
                        && other.created <= me.created
                })
                .map(candidate)
                .collect();
            reverses_refund(&candidate(row), &others)
        };
        Movement::of(&TransactionFacts {
            status: row.status,
            kind: me.kind,
            reverses_refund,
        })
    }

    fn active(&self, tx: u64) -> Vec<&Entry> {
        self.entries
            .iter()
            .filter(|e| {
                e.tx == tx
                    && e.kind != EntryKind::Correction
                    && !self.entries.iter().any(|c| c.reverses == Some(e.id))
            })
            .collect()
    }

    /// `post_one` of the store: returns the related reverses and the replaced amount.
    fn post_one(&mut self, tx: u64) -> Option<FollowUp> {
        let row = self.rows.get(&tx)?.clone();
        let kind = self.identities[&tx].kind;
        let movement = self.movement(&self.rows, tx);
        let desired = transaction_entry(movement, row.amount_minor, row.currency);
        let active: Vec<Entry> = self.active(tx).into_iter().cloned().collect();
        let mut corrections = 0;
        let newest = match active.split_last() {
            Some((newest, older)) => {
                for entry in older {
                    self.reverse(entry);
                    corrections += 1;
                }
                Some(newest)
            }
            None => None,
        };
        let plan = plan_in_batch(
            newest.map(|e| (e.kind, e.lines.as_slice(), Some(e.batch))),
            desired,
            Some(row.batch),
        );
        if plan.reverse_active
            && let Some(entry) = newest
        {
            self.reverse(entry);
            corrections += 1;
        }
        if let Some((kind, lines)) = plan.post {
            let id = self.entries.len();
            self.entries.push(Entry {
                id,
                kind,
                tx,
                batch: row.batch,
                reverses: None,
                lines,
            });
        }
        let reversible = is_reversible_kind(kind);
        let replaced = if reversible && corrections > 0 {
            active.iter().find_map(|e| {
                entry_amount(&e.lines)
                    .filter(|&(old, currency)| old != row.amount_minor || currency != row.currency)
                    .map(|(old, currency)| (old, currency.to_string()))
            })
        } else {
            None
        };
        let related = if reversible {
            self.related_reverses(tx, row.amount_minor, row.currency)
        } else {
            Vec::new()
        };
        Some((related, replaced))
    }

    fn reverse(&mut self, entry: &Entry) {
        let id = self.entries.len();
        self.entries.push(Entry {
            id,
            kind: EntryKind::Correction,
            tx: entry.tx,
            batch: entry.batch,
            reverses: Some(entry.id),
            lines: reversal(&entry.lines),
        });
    }

    fn balances(&self) -> BatchBalances {
        let mut balances = BatchBalances::new();
        for entry in &self.entries {
            add_to_balances(balances.entry(entry.batch).or_default(), &entry.lines);
        }
        balances.retain(|_, b| !b.is_empty());
        balances
    }

    /// The final rows posted from scratch, each once, no history.
    fn posted_from_scratch(&self) -> BatchBalances {
        let mut balances = BatchBalances::new();
        for (tx, row) in &self.rows {
            if let Some((_, lines)) = transaction_entry(
                self.movement(&self.rows, *tx),
                row.amount_minor,
                row.currency,
            ) {
                add_to_balances(balances.entry(row.batch).or_default(), &lines);
            }
        }
        balances.retain(|_, b| !b.is_empty());
        balances
    }

    /// Every entry balances; every correction is its entry's exact reversal, once;
    /// at most one active entry per transaction.
    fn check_entries(&self) -> Result<(), TestCaseError> {
        for entry in &self.entries {
            prop_assert!(is_balanced(&entry.lines), "{entry:?}");
            if let Some(reversed) = entry.reverses {
                let original = &self.entries[reversed];
                prop_assert!(original.kind != EntryKind::Correction);
                prop_assert!(same_lines(&entry.lines, &reversal(&original.lines)));
                prop_assert_eq!(
                    self.entries
                        .iter()
                        .filter(|e| e.reverses == Some(reversed))
                        .count(),
                    1
                );
            }
        }
        for tx in self.rows.keys() {
            prop_assert!(self.active(*tx).len() <= 1);
        }
        Ok(())
    }
}

fn identity() -> impl Strategy<Value = Identity> {
    (
        prop::sample::select(vec!["purchase", "capture", "refund", "reverse", "preauth"]),
        // Few cards and invoices, so reverses find (and lose) their originals often.
        prop::sample::select(vec!["tok-a", "tok-a", "tok-a", "tok-b"]),
        prop::sample::select(vec!["INV-1", "INV-1", "INV-1", "INV-2"]),
        0i64..4,
    )
        .prop_map(|(kind, token, invoice, created)| Identity {
            kind,
            token,
            invoice,
            created,
        })
}

/// A version's state, for a transaction chosen later.
fn state() -> impl Strategy<Value = (&'static str, i64, &'static str, u64)> {
    (
        prop::sample::select(vec!["APPROVED", "APPROVAL", "DECLINED"]),
        prop::sample::select(vec![0i64, 100, 100, 250, 250]),
        prop::sample::select(vec!["CAD", "CAD", "CAD", "USD"]),
        1u64..3,
    )
}

fn versions(transactions: usize) -> impl Strategy<Value = Vec<Version>> {
    prop::collection::vec((0..transactions as u64, state()), 1..16).prop_map(|picked| {
        picked
            .into_iter()
            .enumerate()
            .map(
                |(i, (tx, (status, amount_minor, currency, batch)))| Version {
                    tx,
                    status,
                    amount_minor,
                    currency,
                    batch,
                    fetched_at: i as u64,
                },
            )
            .collect()
    })
}

fn scenario() -> impl Strategy<Value = (Vec<Identity>, Vec<Version>, Vec<Version>)> {
    prop::collection::vec(identity(), 1..6).prop_flat_map(|identities| {
        let n = identities.len();
        versions(n).prop_flat_map(move |versions| {
            (
                Just(identities.clone()),
                Just(versions.clone()),
                Just(versions).prop_shuffle(),
            )
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn any_replay_order_ends_with_the_balances_of_the_final_rows(
        (identities, in_order, shuffled) in scenario()
    ) {
        let mut ordered = Books::new(&identities);
        for version in &in_order {
            ordered.record(version);
        }
        let mut replayed = Books::new(&identities);
        for version in &shuffled {
            replayed.record(version);
        }
        ordered.check_entries()?;
        replayed.check_entries()?;
        prop_assert_eq!(ordered.balances(), ordered.posted_from_scratch());
        prop_assert_eq!(replayed.balances(), replayed.posted_from_scratch());
        prop_assert_eq!(replayed.balances(), ordered.balances());

        // Delivered again (an older answer, or the same): nothing more is posted.
        let posted = replayed.entries.len();
        for version in &shuffled {
            replayed.record(version);
        }
        prop_assert_eq!(replayed.entries.len(), posted);
    }

    #[test]
    fn a_change_and_its_undoing_return_to_the_same_balances(
        (identities, background, _) in scenario(),
        tx_pick in any::<prop::sample::Index>(),
        a in state(),
        b in state(),
    ) {
        let mut books = Books::new(&identities);
        for version in &background {
            books.record(version);
        }
        let tx = tx_pick.index(identities.len()) as u64;
        let mut fetched_at = background.len() as u64;
        let mut version = |(status, amount_minor, currency, batch): (&'static str, i64, &'static str, u64)| {
            fetched_at += 1;
            Version { tx, status, amount_minor, currency, batch, fetched_at }
        };
        books.record(&version(a));
        let before = books.balances();
        books.record(&version(b));
        books.record(&version(a));
        books.check_entries()?;
        prop_assert_eq!(books.balances(), before);
    }
}

#[test]
fn the_model_reclassifies_a_reverse_when_its_refund_arrives_later() {
    let identities = [
        Identity {
            kind: "refund",
            token: "t",
            invoice: "i",
            created: 1,
        },
        Identity {
            kind: "reverse",
            token: "t",
            invoice: "i",
            created: 2,
        },
    ];
    let version = |tx, fetched_at| Version {
        tx,
        status: "APPROVED",
        amount_minor: 100,
        currency: "CAD",
        batch: 1,
        fetched_at,
    };
    let mut books = Books::new(&identities);
    books.record(&version(1, 0));
    books.record(&version(0, 1));
    let kinds: Vec<EntryKind> = books.entries.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EntryKind::SaleReversed,
            EntryKind::Refund,
            EntryKind::Correction,
            EntryKind::RefundReversed
        ]
    );
    let balances = books.balances();
    assert_eq!(
        balances[&1].get(&(JournalAccount::CardClearing, "CAD".to_string())),
        None
    );
}
