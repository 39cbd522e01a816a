//! What `reconctl attribution gaps|summary` print, apart from the database: the gap
//! listing (tab-separated under a header, a summary alone on the last line) and the
//! month summary `make run` ends with.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use recon_attribution::report::share_of;
use recon_attribution::{GapClass, GapStatus};
use recon_money::format_minor_units;
use recon_store::attribution::gaps::{Gap, Summary};

/// The listing's header: scripts find columns by these names.
pub const GAPS_HEADER: &str = "id\taccount\ttransaction\tclass\treason\tamount\tcurrency\t\
share at risk\tmonth\tdeadline\tstatus\tresolution\tdetected";

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn money(minor: i64) -> String {
    format_minor_units(minor, 2)
}

fn dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// The gap listing; `next` is the cursor of the next page, when there is one.
pub fn gaps(gaps: &[Gap], next: Option<&str>) -> String {
    let mut out = format!("{GAPS_HEADER}\n");
    for g in gaps {
        let row = [
            g.id.to_string(),
            dash(g.account_id.as_deref()),
            dash(g.transaction_id),
            g.class.to_string(),
            dash(g.reason),
            dash(g.amount_minor.map(money)),
            dash(g.currency.as_deref()),
            dash(g.share_at_risk_minor().map(money)),
            g.month.to_string(),
            time(g.deadline),
            g.status.to_string(),
            dash(g.resolution),
            time(g.detected_at),
        ];
        out.push_str(&row.join("\t"));
        out.push('\n');
    }
    let count = match gaps.len() {
        1 => "1 gap".to_string(),
        n => format!("{n} gaps"),
    };
    match next {
        Some(cursor) => out.push_str(&format!(
            "{count} shown; more with the same filters and --cursor {cursor}\n"
        )),
        None => out.push_str(&format!("{count}\n")),
    }
    out
}

/// `7d 11h 54m`, `3h 0m`, `12m`, `<1m`.
pub fn span(seconds: i64) -> String {
    let seconds = seconds.max(0);
    let (days, hours, minutes) = (
        seconds / 86_400,
        seconds % 86_400 / 3_600,
        seconds % 3_600 / 60,
    );
    match (days, hours, minutes) {
        (0, 0, 0) => "<1m".to_string(),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, m) => format!("{d}d {h}h {m}m"),
    }
}

/// The month summary: the close and how far it is, unresolved gaps by class (with
/// their statuses), money and share at risk by currency, and what happened after the
/// close.
pub fn summary(s: &Summary, deadline: DateTime<Utc>, zone: &str, now: DateTime<Utc>) -> String {
    let mut out = format!("attribution summary for {}\n", s.month);
    let until = (deadline - now).num_seconds();
    let when = if until > 0 {
        format!("in {}", span(until))
    } else {
        format!("closed {} ago", span(-until))
    };
    out.push_str(&format!(
        "close: {} (midnight {zone}), {when}\n",
        time(deadline)
    ));
    match s.frozen_at {
        Some(at) => out.push_str(&format!(
            "report: frozen at {}; {} post-close notes\n",
            time(at),
            s.post_close_notes
        )),
        None if until <= 0 => {
            out.push_str("report: not frozen yet (the worker freezes it after the close)\n")
        }
        None => out.push_str("report: live until the close\n"),
    }
    let mut by_class: BTreeMap<GapClass, BTreeMap<GapStatus, i64>> = BTreeMap::new();
    let mut resolved = 0;
    for &(class, status, n) in &s.gaps {
        if status == GapStatus::Resolved {
            resolved += n;
        } else {
            *by_class
                .entry(class)
                .or_default()
                .entry(status)
                .or_default() += n;
        }
    }
    let unresolved: i64 = by_class.values().flat_map(|m| m.values()).sum();
    out.push_str(&format!("gaps not resolved: {unresolved}\n"));
    for class in GapClass::ALL {
        let statuses = by_class.get(class).cloned().unwrap_or_default();
        let total: i64 = statuses.values().sum();
        let detail: Vec<String> = statuses.iter().map(|(st, n)| format!("{n} {st}")).collect();
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!(" ({})", detail.join(", "))
        };
        out.push_str(&format!("  {:<16}{total}{detail}\n", class.as_str()));
    }
    out.push_str(&format!("gaps resolved: {resolved}\n"));
    // Per currency: the volume, the share over the accounts with a rate, and the
    // accounts without one (their share cannot be known).
    let mut currencies: BTreeMap<&str, (i64, i64, Vec<&str>)> = BTreeMap::new();
    for line in &s.at_risk {
        let entry = currencies.entry(line.currency.as_str()).or_default();
        entry.0 += line.amount_minor;
        match line.share_rate_bps {
            Some(bps) => entry.1 += share_of(line.amount_minor, bps),
            None => entry.2.push(line.account_id.as_str()),
        }
    }
    if currencies.is_empty() {
        out.push_str("money at risk: none\n");
    } else {
        out.push_str("money at risk:\n");
        for (currency, (volume, share, without)) in currencies {
            let mut line = format!(
                "  {currency} {}, share at risk {}",
                money(volume),
                money(share)
            );
            if !without.is_empty() {
                line.push_str(&format!(
                    " (no share rate for {}; set one with `reconctl accounts set-share`)",
                    without.join(", ")
                ));
            }
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use recon_attribution::{Month, OrphanReason};
    use recon_store::attribution::gaps::AtRisk;

    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn spans_read_like_a_countdown() {
        assert_eq!(span(7 * 86_400 + 11 * 3_600 + 54 * 60 + 5), "7d 11h 54m");
        assert_eq!(span(3 * 3_600), "3h 0m");
        assert_eq!(span(720), "12m");
        assert_eq!(span(59), "<1m");
        assert_eq!(span(-5), "<1m");
    }

    #[test]
    fn the_summary_counts_gaps_by_class_and_money_by_currency() {
        let s = Summary {
            month: Month::new(2026, 11).unwrap(),
            frozen_at: None,
            gaps: vec![
                (GapClass::TokenRejected, GapStatus::Open, 2),
                (GapClass::TokenRejected, GapStatus::Acknowledged, 1),
                (GapClass::Unattributed, GapStatus::Resolved, 4),
                (GapClass::OrphanEvidence, GapStatus::Open, 1),
            ],
            at_risk: vec![
                AtRisk {
                    account_id: "a".into(),
                    currency: "CAD".into(),
                    amount_minor: 6_999,
                    share_rate_bps: Some(250),
                },
                AtRisk {
                    account_id: "b".into(),
                    currency: "CAD".into(),
                    amount_minor: 1_000,
                    share_rate_bps: None,
                },
            ],
            post_close_notes: 0,
        };
        let text = summary(
            &s,
            at("2026-12-01T07:00:00Z"),
            "America/Edmonton",
            at("2026-11-23T19:05:00Z"),
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "attribution summary for 2026-11",
                "close: 2026-12-01T07:00:00Z (midnight America/Edmonton), in 7d 11h 55m",
                "report: live until the close",
                "gaps not resolved: 4",
                "  token_rejected  3 (2 open, 1 acknowledged)",
                "  token_missing   0",
                "  unattributed    0",
                "  orphan_evidence 1 (1 open)",
                "gaps resolved: 4",
                "money at risk:",
                "  CAD 79.99, share at risk 1.74 (no share rate for b; set one with `reconctl accounts set-share`)",
            ]
        );
        let closed = summary(
            &Summary {
                at_risk: vec![],
                ..s
            },
            at("2026-12-01T07:00:00Z"),
            "America/Edmonton",
            at("2026-12-01T09:00:00Z"),
        );
        assert!(closed.contains("closed 2h 0m ago"), "{closed}");
        assert!(closed.contains("not frozen yet"), "{closed}");
        assert!(closed.contains("money at risk: none"), "{closed}");
    }

    #[test]
    fn each_gap_is_one_row_with_dashes_for_what_it_lacks() {
        let gap = Gap {
            id: 9,
            account_id: None,
            transaction_id: None,
            evidence_id: Some(3),
            class: GapClass::OrphanEvidence,
            reason: Some(OrphanReason::UnregisteredAccount),
            candidates: None,
            amount_minor: Some(5_000),
            currency: Some("CAD".into()),
            month: Month::new(2026, 11).unwrap(),
            deadline: at("2026-12-01T07:00:00Z"),
            status: GapStatus::Open,
            resolution: None,
            detected_at: at("2026-11-20T10:00:00Z"),
            updated_at: at("2026-11-20T10:00:00Z"),
            share_rate_bps: None,
        };
        let out = gaps(&[gap], Some("abc"));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], GAPS_HEADER);
        assert_eq!(
            lines[1],
            "9\t-\t-\torphan_evidence\tunregistered_account\t50.00\tCAD\t-\t2026-11\t\
             2026-12-01T07:00:00Z\topen\t-\t2026-11-20T10:00:00Z"
        );
        assert_eq!(
            lines[1].split('\t').count(),
            GAPS_HEADER.split('\t').count()
        );
        assert_eq!(
            lines[2],
            "1 gap shown; more with the same filters and --cursor abc"
        );
    }
}
