//! The month report: per account and currency, the revenue-bearing volume and how much
//! of it is attributed, at risk (by class), still in its grace period, or waived by a
//! person, with the refunds beside it. Every number is a sum over transactions the
//! gaps API lists, so each can be traced back to them.
//!
//! The numbers always add up: `volume = attributedVolume + atRiskVolume +
//! pendingVolume + waivedVolume` (and likewise for the counts).
//!
//! Rendering is deterministic (lines sorted, keys in a fixed order, money as exact
//! decimal strings), so a frozen report renders to the same bytes every time.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use recon_money::format_minor_units;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::GapClass;
use crate::month::Month;

/// One group of the engine's verdicts, as the database sums them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    pub account_id: String,
    pub currency: String,
    pub kind: crate::Kind,
    /// `pending`, `attributed`, `gap`, `waived` or `none` (the verdict column).
    pub verdict: String,
    pub gap_class: Option<GapClass>,
    pub count: i64,
    pub amount_minor: i64,
}

/// Unresolved gaps of the month by account and class (orphans included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GapCount {
    pub account_id: String,
    pub class: GapClass,
    pub count: i64,
}

/// One line of the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Line {
    pub account_id: String,
    pub currency: String,
    pub share_rate_bps: Option<i32>,
    pub transactions: i64,
    pub volume: String,
    pub attributed_transactions: i64,
    pub attributed_volume: String,
    pub at_risk_transactions: i64,
    pub at_risk_volume: String,
    pub pending_transactions: i64,
    pub pending_volume: String,
    pub waived_transactions: i64,
    pub waived_volume: String,
    /// `atRiskVolume × shareRateBps / 10,000`, rounded down to the cent; null without
    /// a rate.
    pub share_at_risk: Option<String>,
    /// At-risk volume by class (`token_rejected`, `token_missing`, `unattributed`).
    pub at_risk_by_class: BTreeMap<String, String>,
    /// Unresolved gaps by class, `orphan_evidence` included (whose money is not in the
    /// ledger, so not in any volume here).
    pub gaps: BTreeMap<String, i64>,
    pub refunds: i64,
    pub refund_volume: String,
}

/// A month's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub month: String,
    pub closes_at: String,
    pub frozen: bool,
    /// When the numbers were taken: the freeze, or the request for a live report.
    pub as_of: String,
    pub accounts: Vec<Line>,
}

fn money(minor: i64) -> String {
    format_minor_units(minor, 2)
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `minor × bps / 10,000`, rounded toward zero, without overflow.
pub fn share_of(minor: i64, bps: i32) -> i64 {
    let share = i128::from(minor) * i128::from(bps) / 10_000;
    i64::try_from(share).unwrap_or(i64::MAX)
}

#[derive(Default)]
struct Sums {
    transactions: i64,
    volume: i64,
    attributed: (i64, i64),
    at_risk: (i64, i64),
    pending: (i64, i64),
    waived: (i64, i64),
    by_class: BTreeMap<String, i64>,
    refunds: (i64, i64),
}

impl Report {
    /// Builds the report from the database's sums. `rates` maps account ids to their
    /// share rate in basis points. Accounts with gaps but no transactions in a
    /// currency (orphan evidence only) get a line in the currency `---`.
    pub fn assemble(
        month: Month,
        closes_at: DateTime<Utc>,
        frozen: bool,
        as_of: DateTime<Utc>,
        tallies: &[Tally],
        gap_counts: &[GapCount],
        rates: &BTreeMap<String, i32>,
    ) -> Report {
        let mut sums: BTreeMap<(String, String), Sums> = BTreeMap::new();
        for t in tallies {
            let entry = sums
                .entry((t.account_id.clone(), t.currency.trim().to_string()))
                .or_default();
            let pair = (t.count, t.amount_minor);
            match t.kind {
                crate::Kind::Adjustment => add(&mut entry.refunds, pair),
                crate::Kind::None => {}
                crate::Kind::Revenue => {
                    entry.transactions += t.count;
                    entry.volume += t.amount_minor;
                    match t.verdict.as_str() {
                        "attributed" => add(&mut entry.attributed, pair),
                        "pending" => add(&mut entry.pending, pair),
                        "waived" => add(&mut entry.waived, pair),
                        _ => {
                            add(&mut entry.at_risk, pair);
                            if let Some(class) = t.gap_class {
                                *entry
                                    .by_class
                                    .entry(class.as_str().to_string())
                                    .or_default() += t.amount_minor;
                            }
                        }
                    }
                }
            }
        }
        let mut gaps: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        for g in gap_counts {
            *gaps
                .entry(g.account_id.clone())
                .or_default()
                .entry(g.class.as_str().to_string())
                .or_default() += g.count;
        }
        for account in gaps.keys() {
            if !sums.keys().any(|(a, _)| a == account) {
                sums.insert((account.clone(), "---".to_string()), Sums::default());
            }
        }
        let mut gaps_shown: std::collections::BTreeSet<String> = Default::default();
        let accounts = sums
            .into_iter()
            .map(|((account_id, currency), s)| {
                let rate = rates.get(&account_id).copied();
                // An account's gap counts go on its first line only, so summing the
                // lines never counts a gap twice.
                let gaps = if gaps_shown.insert(account_id.clone()) {
                    gaps.get(&account_id).cloned().unwrap_or_default()
                } else {
                    BTreeMap::new()
                };
                Line {
                    share_rate_bps: rate,
                    transactions: s.transactions,
                    volume: money(s.volume),
                    attributed_transactions: s.attributed.0,
                    attributed_volume: money(s.attributed.1),
                    at_risk_transactions: s.at_risk.0,
                    at_risk_volume: money(s.at_risk.1),
                    pending_transactions: s.pending.0,
                    pending_volume: money(s.pending.1),
                    waived_transactions: s.waived.0,
                    waived_volume: money(s.waived.1),
                    share_at_risk: rate.map(|bps| money(share_of(s.at_risk.1, bps))),
                    at_risk_by_class: s.by_class.into_iter().map(|(k, v)| (k, money(v))).collect(),
                    gaps,
                    refunds: s.refunds.0,
                    refund_volume: money(s.refunds.1),
                    account_id,
                    currency,
                }
            })
            .collect();
        Report {
            month: month.to_string(),
            closes_at: rfc3339(closes_at),
            frozen,
            as_of: rfc3339(as_of),
            accounts,
        }
    }

    /// The same report restricted to some accounts (a partner's scope).
    pub fn only(&self, accounts: &dyn Fn(&str) -> bool) -> Report {
        Report {
            accounts: self
                .accounts
                .iter()
                .filter(|line| accounts(&line.account_id))
                .cloned()
                .collect(),
            ..self.clone()
        }
    }

    /// Pretty-printed JSON with a final newline; the same report, the same bytes.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    pub fn from_json(bytes: &[u8]) -> Result<Report, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// RFC 4180 CSV: a header row, one row per line, CRLF line ends. Account ids and
    /// currencies are the only text cells; both are restricted to `[A-Za-z0-9._-]`
    /// and `---`, so no cell can start a spreadsheet formula, but every cell is still
    /// passed through [`csv_cell`].
    pub fn to_csv(&self) -> Vec<u8> {
        let classes = [
            GapClass::TokenRejected,
            GapClass::TokenMissing,
            GapClass::Unattributed,
            GapClass::OrphanEvidence,
        ];
        let mut header: Vec<String> = [
            "month",
            "closes_at",
            "frozen",
            "as_of",
            "account_id",
            "currency",
            "share_rate_bps",
            "transactions",
            "volume",
            "attributed_transactions",
            "attributed_volume",
            "at_risk_transactions",
            "at_risk_volume",
            "pending_transactions",
            "pending_volume",
            "waived_transactions",
            "waived_volume",
            "share_at_risk",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for class in &classes[..3] {
            header.push(format!("at_risk_volume_{class}"));
        }
        for class in &classes {
            header.push(format!("gaps_{class}"));
        }
        header.push("refunds".into());
        header.push("refund_volume".into());
        let mut out = String::new();
        push_row(&mut out, &header);
        for line in &self.accounts {
            let mut row = vec![
                self.month.clone(),
                self.closes_at.clone(),
                self.frozen.to_string(),
                self.as_of.clone(),
                line.account_id.clone(),
                line.currency.clone(),
                line.share_rate_bps
                    .map(|b| b.to_string())
                    .unwrap_or_default(),
                line.transactions.to_string(),
                line.volume.clone(),
                line.attributed_transactions.to_string(),
                line.attributed_volume.clone(),
                line.at_risk_transactions.to_string(),
                line.at_risk_volume.clone(),
                line.pending_transactions.to_string(),
                line.pending_volume.clone(),
                line.waived_transactions.to_string(),
                line.waived_volume.clone(),
                line.share_at_risk.clone().unwrap_or_default(),
            ];
            for class in &classes[..3] {
                row.push(
                    line.at_risk_by_class
                        .get(class.as_str())
                        .cloned()
                        .unwrap_or_else(|| money(0)),
                );
            }
            for class in &classes {
                row.push(
                    line.gaps
                        .get(class.as_str())
                        .copied()
                        .unwrap_or(0)
                        .to_string(),
                );
            }
            row.push(line.refunds.to_string());
            row.push(line.refund_volume.clone());
            push_row(&mut out, &row);
        }
        out.into_bytes()
    }
}

fn add(pair: &mut (i64, i64), (count, amount): (i64, i64)) {
    pair.0 += count;
    pair.1 += amount;
}

fn push_row(out: &mut String, cells: &[String]) {
    let row: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
    out.push_str(&row.join(","));
    out.push_str("\r\n");
}

/// One CSV cell: quoted when it holds a comma, quote, CR or LF (RFC 4180), and
/// prefixed with `'` when it is text a spreadsheet would run as a formula (`=`, `+`,
/// `-`, `@`, tab or CR first). Money and counts (a minus sign then digits) are left
/// as they are: they are numbers, not formulas.
pub fn csv_cell(text: &str) -> String {
    let numeric = {
        let digits = text.strip_prefix('-').unwrap_or(text);
        !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
    };
    let guarded = match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') if !numeric => format!("'{text}"),
        _ => text.to_string(),
    };
    if guarded.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

/// Lower-case hex SHA-256 of a document, as stored beside it and sent as its ETag.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Kind;

    fn tally(
        account: &str,
        kind: Kind,
        verdict: &str,
        class: Option<GapClass>,
        count: i64,
        amount: i64,
    ) -> Tally {
        Tally {
            account_id: account.into(),
            currency: "CAD".into(),
            kind,
            verdict: verdict.into(),
            gap_class: class,
            count,
            amount_minor: amount,
        }
    }

    fn sample() -> Report {
        let month = Month::new(2026, 11).unwrap();
        let at: DateTime<Utc> = "2026-12-01T07:00:00Z".parse().unwrap();
        let tallies = vec![
            tally("b", Kind::Revenue, "attributed", None, 3, 30_000),
            tally(
                "a",
                Kind::Revenue,
                "gap",
                Some(GapClass::TokenRejected),
                1,
                1_999,
            ),
            tally(
                "a",
                Kind::Revenue,
                "gap",
                Some(GapClass::Unattributed),
                2,
                5_000,
            ),
            tally("a", Kind::Revenue, "attributed", None, 1, 10_000),
            tally("a", Kind::Revenue, "pending", None, 1, 100),
            tally(
                "a",
                Kind::Revenue,
                "waived",
                Some(GapClass::TokenMissing),
                1,
                700,
            ),
            tally("a", Kind::Adjustment, "none", None, 1, 2_500),
            tally("a", Kind::None, "none", None, 4, 99_999),
        ];
        let gaps = vec![
            GapCount {
                account_id: "a".into(),
                class: GapClass::Unattributed,
                count: 2,
            },
            GapCount {
                account_id: "a".into(),
                class: GapClass::TokenRejected,
                count: 1,
            },
            GapCount {
                account_id: "c".into(),
                class: GapClass::OrphanEvidence,
                count: 1,
            },
        ];
        let rates = BTreeMap::from([("a".to_string(), 250)]);
        Report::assemble(month, at, true, at, &tallies, &gaps, &rates)
    }

    #[test]
    fn the_numbers_add_up_and_each_goes_where_it_belongs() {
        let report = sample();
        let a = &report.accounts[0];
        assert_eq!(a.account_id, "a");
        assert_eq!((a.transactions, a.volume.as_str()), (6, "177.99"));
        assert_eq!(a.attributed_volume, "100.00");
        assert_eq!(
            (a.at_risk_transactions, a.at_risk_volume.as_str()),
            (3, "69.99")
        );
        assert_eq!(a.pending_volume, "1.00");
        assert_eq!(a.waived_volume, "7.00");
        assert_eq!(a.share_at_risk.as_deref(), Some("1.74"));
        assert_eq!(a.at_risk_by_class["unattributed"], "50.00");
        assert_eq!(a.gaps["unattributed"], 2);
        assert_eq!((a.refunds, a.refund_volume.as_str()), (1, "25.00"));
        let b = &report.accounts[1];
        assert_eq!(
            (b.account_id.as_str(), b.share_at_risk.clone()),
            ("b", None)
        );
        let c = &report.accounts[2];
        assert_eq!(
            (
                c.account_id.as_str(),
                c.currency.as_str(),
                c.gaps["orphan_evidence"]
            ),
            ("c", "---", 1)
        );
    }

    #[test]
    fn rendering_is_byte_stable_and_round_trips() {
        let report = sample();
        let again = Report::from_json(&report.to_json()).unwrap();
        assert_eq!(again, report);
        assert_eq!(again.to_json(), report.to_json());
        assert_eq!(again.to_csv(), report.to_csv());
        let csv = String::from_utf8(report.to_csv()).unwrap();
        assert_eq!(csv.lines().count(), 4);
        assert!(csv.ends_with("\r\n"));
        let only_b = report.only(&|a| a == "b");
        assert_eq!(only_b.accounts.len(), 1);
    }

    #[test]
    fn csv_cells_quote_and_refuse_formulas() {
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(csv_cell("@cmd"), "'@cmd");
        assert_eq!(csv_cell("+1"), "'+1");
        assert_eq!(csv_cell("-12.50"), "-12.50");
        assert_eq!(csv_cell("-x"), "'-x");
    }

    #[test]
    fn shares_round_down_without_overflow() {
        assert_eq!(share_of(6_999, 250), 174);
        assert_eq!(share_of(i64::MAX, 10_000), i64::MAX);
    }
}
