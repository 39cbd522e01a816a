//! Which escalation thresholds an account's unresolved gaps have crossed, and which
//! one to alert. Pure: the worker supplies the deadline, now and what it recorded.
//!
//! Every crossed threshold is recorded once (the database's primary key makes it
//! once across replicas). When several are crossed at once (the worker was down, or
//! the gaps appeared late in the month) only the nearest to the close is alerted: an
//! operator needs the most urgent message, not four of them in the same second.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::month::Thresholds;

/// What to record and alert for one account and month right now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Thresholds crossed and not yet recorded, farthest first.
    pub record: Vec<Duration>,
    /// The one to alert: the nearest to the close among `record`; `None` when nothing
    /// new was crossed.
    pub alert: Option<Duration>,
}

/// The thresholds crossed at `now` (now ≥ deadline − t), farthest first. None once
/// the close has passed: the close itself, not an escalation, speaks then.
pub fn crossed(
    thresholds: &Thresholds,
    deadline: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<Duration> {
    if now >= deadline {
        return Vec::new();
    }
    thresholds
        .before_close()
        .iter()
        .copied()
        .filter(|t| {
            chrono::Duration::from_std(*t)
                .ok()
                .and_then(|t| deadline.checked_sub_signed(t))
                .is_some_and(|at| now >= at)
        })
        .collect()
}

/// The plan for one account and month, given the thresholds already recorded.
///
/// An already-recorded threshold is never alerted again, and a farther threshold
/// first seen after a nearer one was recorded is recorded without an alert (it is
/// less urgent than what was already said).
pub fn plan(
    thresholds: &Thresholds,
    deadline: DateTime<Utc>,
    now: DateTime<Utc>,
    recorded: &[Duration],
) -> Plan {
    let record: Vec<Duration> = crossed(thresholds, deadline, now)
        .into_iter()
        .filter(|t| !recorded.contains(t))
        .collect();
    let nearest_recorded = recorded.iter().min().copied();
    let alert = record
        .iter()
        .min()
        .copied()
        .filter(|t| nearest_recorded.is_none_or(|r| *t < r));
    Plan { record, alert }
}

/// The earliest instant after `now` at which another threshold is crossed (when the
/// sweep need not run sooner for escalations), or `None` when none is left.
pub fn next_crossing(
    thresholds: &Thresholds,
    deadline: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    thresholds
        .before_close()
        .iter()
        .filter_map(|t| deadline.checked_sub_signed(chrono::Duration::from_std(*t).ok()?))
        .filter(|at| *at > now)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;
    const HOUR: u64 = 3_600;

    fn d(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    fn deadline() -> DateTime<Utc> {
        "2026-12-01T07:00:00Z".parse().unwrap()
    }

    fn before(secs: i64) -> DateTime<Utc> {
        deadline() - chrono::Duration::seconds(secs)
    }

    #[test]
    fn nothing_is_crossed_before_the_first_threshold() {
        let t = Thresholds::default();
        let plan = plan(&t, deadline(), before(7 * DAY as i64 + 1), &[]);
        assert_eq!(plan, Plan::default());
    }

    #[test]
    fn a_threshold_is_crossed_at_its_exact_instant() {
        let t = Thresholds::default();
        let p = plan(&t, deadline(), before(7 * DAY as i64), &[]);
        assert_eq!(p.record, vec![d(7 * DAY)]);
        assert_eq!(p.alert, Some(d(7 * DAY)));
    }

    #[test]
    fn several_crossed_at_once_alert_only_the_nearest() {
        let t = Thresholds::default();
        // 20 hours before the close: 7d, 2d and 1d are all crossed.
        let p = plan(&t, deadline(), before(20 * HOUR as i64), &[]);
        assert_eq!(p.record, vec![d(7 * DAY), d(2 * DAY), d(DAY)]);
        assert_eq!(p.alert, Some(d(DAY)));
    }

    #[test]
    fn recorded_thresholds_are_neither_recorded_nor_alerted_again() {
        let t = Thresholds::default();
        let now = before(20 * HOUR as i64);
        let all = [d(7 * DAY), d(2 * DAY), d(DAY)];
        assert_eq!(plan(&t, deadline(), now, &all), Plan::default());
        // 7d was recorded earlier; now 2d and 1d are new: 1d alerts.
        let p = plan(&t, deadline(), now, &[d(7 * DAY)]);
        assert_eq!(p.record, vec![d(2 * DAY), d(DAY)]);
        assert_eq!(p.alert, Some(d(DAY)));
    }

    #[test]
    fn a_farther_threshold_seen_after_a_nearer_one_is_recorded_silently() {
        // Thresholds configured later (7d added after 1d fired): record 7d, no alert.
        let t = Thresholds::default();
        let p = plan(
            &t,
            deadline(),
            before(20 * HOUR as i64),
            &[d(DAY), d(2 * DAY)],
        );
        assert_eq!(p.record, vec![d(7 * DAY)]);
        assert_eq!(p.alert, None);
    }

    #[test]
    fn stepping_through_the_month_alerts_each_threshold_once() {
        let t = Thresholds::default();
        let mut recorded = Vec::new();
        let mut alerts = Vec::new();
        for secs in [
            8 * DAY,
            7 * DAY,
            3 * DAY,
            2 * DAY,
            DAY + 1,
            DAY,
            6 * HOUR,
            HOUR,
            1,
        ] {
            let p = plan(&t, deadline(), before(secs as i64), &recorded);
            recorded.extend(p.record);
            alerts.extend(p.alert);
        }
        assert_eq!(alerts, vec![d(7 * DAY), d(2 * DAY), d(DAY), d(6 * HOUR)]);
        assert_eq!(recorded.len(), 4);
    }

    #[test]
    fn after_the_close_nothing_escalates() {
        let t = Thresholds::default();
        assert!(crossed(&t, deadline(), deadline()).is_empty());
        assert_eq!(
            plan(&t, deadline(), deadline() + chrono::Duration::hours(1), &[]),
            Plan::default()
        );
    }

    #[test]
    fn the_next_crossing_is_the_nearest_future_threshold() {
        let t = Thresholds::default();
        assert_eq!(
            next_crossing(&t, deadline(), before(3 * DAY as i64)),
            Some(before(2 * DAY as i64))
        );
        assert_eq!(next_crossing(&t, deadline(), before(HOUR as i64)), None);
    }
}
