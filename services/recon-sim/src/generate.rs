//! Deterministic merchant activity from a seed: accounts with CAD and USD terminals,
//! purchases, declines, preauths and captures, refunds, same-batch reversals,
//! verifies, Smart Terminal cancels, and batches that close daily.
//!
//! The same [`GenerateConfig`] always gives the same [`Activity`], down to ids, tokens
//! and amounts.

mod accounts;
mod amounts;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::activity::{Activity, Batch, BatchStats, Kind, Status, TerminalCancel, Transaction};
use crate::{HELCIM_TIME_ZONE, format_mountain};
use accounts::{AccountProfile, Card};
pub(crate) use accounts::{code, verifier_token};

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateConfig {
    pub seed: u64,
    pub accounts: usize,
    pub transactions_per_account: usize,
    /// First Mountain Time day of activity.
    pub start: NaiveDate,
    pub days: u32,
    /// Local (Mountain Time) hour at which batches close each day.
    pub batch_close_hour: u32,
}

impl Default for GenerateConfig {
    /// Two accounts, four days that straddle the 2026-11-01 daylight-saving change.
    fn default() -> Self {
        GenerateConfig {
            seed: 1,
            accounts: 2,
            transactions_per_account: 250,
            start: NaiveDate::from_ymd_opt(2026, 10, 30).expect("valid date"),
            days: 4,
            batch_close_hour: 17,
        }
    }
}

impl GenerateConfig {
    /// The instant activity ends: batches that would close after it are still open.
    pub fn end(&self) -> DateTime<Utc> {
        mountain_instant(self.start + Duration::days(i64::from(self.days)), 0)
    }
}

/// Generates the activity for `config`.
pub fn generate(config: &GenerateConfig) -> Activity {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let profiles: Vec<AccountProfile> = (0..config.accounts)
        .map(|index| AccountProfile::generate(index, &mut rng))
        .collect();
    let mut builder = Builder {
        config,
        next_transaction_id: 25_700_000 + rng.random_range(0..100_000),
        next_batch_id: 3_000 + rng.random_range(0..1_000),
        activity: Activity {
            accounts: profiles.iter().map(|p| p.account.clone()).collect(),
            ..Activity::default()
        },
        open_batches: HashMap::new(),
        batch_numbers: HashMap::new(),
        states: profiles.iter().map(|_| AccountState::default()).collect(),
    };

    let mut instants: Vec<(DateTime<Utc>, usize)> = Vec::new();
    for account in 0..config.accounts {
        for _ in 0..config.transactions_per_account {
            instants.push((random_instant(config, &mut rng), account));
        }
    }
    instants.sort();
    for (at, account) in instants {
        builder.next_event(&profiles[account], account, at, &mut rng);
    }
    for (account, profile) in profiles.iter().enumerate() {
        let cancels = (config.transactions_per_account / 100).max(1);
        for _ in 0..cancels {
            let at = random_instant(config, &mut rng);
            builder.cancel(profile, account, at, &mut rng);
        }
    }
    builder.finish()
}

#[derive(Debug, Default)]
struct AccountState {
    /// Approved preauths not yet captured (indexes into `transactions`).
    pending_preauths: Vec<usize>,
    /// Approved sales with the amount still refundable.
    refundable: Vec<(usize, i64)>,
    /// Sales and refunds already refunded or reversed: no longer reversible.
    settled: HashSet<u64>,
    invoice_seq: u64,
}

struct Builder<'a> {
    config: &'a GenerateConfig,
    next_transaction_id: u64,
    next_batch_id: u64,
    activity: Activity,
    /// (terminal, close date) → index into `activity.batches`.
    open_batches: HashMap<(String, NaiveDate), usize>,
    batch_numbers: HashMap<String, u64>,
    states: Vec<AccountState>,
}

/// What one event does, before it becomes a transaction.
struct Draft<'c> {
    kind: Kind,
    amount_minor: i64,
    terminal: usize,
    card: &'c Card,
    original: Option<usize>,
    customer_code: String,
    invoice_number: String,
}

impl Builder<'_> {
    fn next_event(
        &mut self,
        profile: &AccountProfile,
        account: usize,
        at: DateTime<Utc>,
        rng: &mut ChaCha8Rng,
    ) {
        let draft = self.draft(profile, account, at, rng);
        let declined = match draft.kind {
            Kind::Purchase | Kind::Preauth => rng.random_range(0..100) < 8,
            Kind::Verify => rng.random_range(0..100) < 5,
            _ => false,
        };
        let index = self.push(profile, at, draft, declined, rng);
        let tx = &self.activity.transactions[index];
        let state = &mut self.states[account];
        if let (Status::Approved, Some(original)) = (tx.status, tx.original_transaction_id) {
            state.settled.insert(original);
        }
        if tx.status == Status::Approved {
            match tx.kind {
                Kind::Preauth => state.pending_preauths.push(index),
                Kind::Purchase | Kind::Capture => state.refundable.push((index, tx.amount_minor)),
                _ => {}
            }
        }
    }

    fn draft<'c>(
        &mut self,
        profile: &'c AccountProfile,
        account: usize,
        at: DateTime<Utc>,
        rng: &mut ChaCha8Rng,
    ) -> Draft<'c> {
        let roll = rng.random_range(0..100);
        let follow_up = match roll {
            0..6 => Some(Kind::Preauth),
            6..12 => self.capture(account),
            12..19 => self.refund(account, rng),
            19..24 => self.reverse(account, at),
            24..26 => Some(Kind::Verify),
            _ => None,
        };
        let state = &mut self.states[account];
        state.invoice_seq += 1;
        let invoice_number = format!("INV{:03}{:06}", account + 1, state.invoice_seq);
        match follow_up {
            Some(Kind::Capture) => {
                let original = state.pending_preauths.remove(0);
                let pre = &self.activity.transactions[original];
                let full = rng.random_range(0..100) < 80;
                let amount_minor = if full {
                    pre.amount_minor
                } else {
                    (pre.amount_minor * 9 / 10).max(1)
                };
                self.follow_up(profile, Kind::Capture, original, amount_minor)
            }
            Some(Kind::Refund) => {
                let pick = rng.random_range(0..state.refundable.len());
                let (original, left) = state.refundable[pick];
                let amount_minor = if rng.random_bool(0.5) {
                    left
                } else {
                    rng.random_range(1..=left)
                };
                if amount_minor == left {
                    state.refundable.swap_remove(pick);
                } else {
                    state.refundable[pick].1 -= amount_minor;
                }
                self.follow_up(profile, Kind::Refund, original, amount_minor)
            }
            Some(Kind::Reverse) => {
                let original = self.reversible(account, at).expect("checked by reverse()");
                let state = &mut self.states[account];
                state.refundable.retain(|(index, _)| *index != original);
                let amount_minor = self.activity.transactions[original].amount_minor;
                self.follow_up(profile, Kind::Reverse, original, amount_minor)
            }
            kind => {
                let kind = kind.unwrap_or(Kind::Purchase);
                let card = &profile.cards[rng.random_range(0..profile.cards.len())];
                let amount_minor = if kind == Kind::Verify {
                    0
                } else {
                    amounts::purchase(rng)
                };
                Draft {
                    kind,
                    amount_minor,
                    terminal: profile.pick_terminal(rng),
                    card,
                    original: None,
                    customer_code: profile.customer(rng),
                    invoice_number,
                }
            }
        }
    }

    fn capture(&self, account: usize) -> Option<Kind> {
        (!self.states[account].pending_preauths.is_empty()).then_some(Kind::Capture)
    }

    fn refund(&self, account: usize, rng: &mut ChaCha8Rng) -> Option<Kind> {
        let some = !self.states[account].refundable.is_empty();
        (some && rng.random_bool(0.9)).then_some(Kind::Refund)
    }

    fn reverse(&self, account: usize, at: DateTime<Utc>) -> Option<Kind> {
        self.reversible(account, at).map(|_| Kind::Reverse)
    }

    /// The newest approved sale or refund of the account still in its open batch: a
    /// reverse voids a transaction before its batch closes.
    fn reversible(&self, account: usize, at: DateTime<Utc>) -> Option<usize> {
        let account_id = &self.activity.accounts[account].account_id;
        let close_date = self.close_date(at);
        let settled = &self.states[account].settled;
        self.activity
            .transactions
            .iter()
            .enumerate()
            .rev()
            .take(200)
            .find(|(_, tx)| {
                &tx.account_id == account_id
                    && tx.status == Status::Approved
                    && matches!(tx.kind, Kind::Purchase | Kind::Refund)
                    && self.open_batches.get(&(tx.terminal_id.clone(), close_date))
                        == Some(&self.batch_index(tx.card_batch_id))
                    && !settled.contains(&tx.transaction_id)
            })
            .map(|(index, _)| index)
    }

    fn batch_index(&self, card_batch_id: u64) -> usize {
        self.activity
            .batches
            .binary_search_by_key(&card_batch_id, |b| b.card_batch_id)
            .expect("every transaction's batch exists")
    }

    fn follow_up<'c>(
        &self,
        profile: &'c AccountProfile,
        kind: Kind,
        original: usize,
        amount_minor: i64,
    ) -> Draft<'c> {
        let tx = &self.activity.transactions[original];
        Draft {
            kind,
            amount_minor,
            terminal: profile.terminal_index(&tx.terminal_id),
            card: profile.card(&tx.card_token),
            original: Some(original),
            customer_code: tx.customer_code.clone(),
            invoice_number: tx.invoice_number.clone(),
        }
    }

    fn push(
        &mut self,
        profile: &AccountProfile,
        at: DateTime<Utc>,
        draft: Draft<'_>,
        declined: bool,
        rng: &mut ChaCha8Rng,
    ) -> usize {
        let terminal = &profile.account.terminals[draft.terminal];
        let card_batch_id = self.batch_for(profile, &terminal.terminal_id, terminal.currency, at);
        let transaction_id = self.next_transaction_id;
        self.next_transaction_id += rng.random_range(1..4);
        let status = if declined {
            Status::Declined
        } else {
            Status::Approved
        };
        self.activity.transactions.push(Transaction {
            account_id: profile.account.account_id.clone(),
            transaction_id,
            created_at: at,
            date_created: format_mountain(at),
            card_batch_id,
            terminal_id: terminal.terminal_id.clone(),
            status,
            kind: draft.kind,
            amount_minor: draft.amount_minor,
            currency: terminal.currency,
            original_transaction_id: draft
                .original
                .map(|i| self.activity.transactions[i].transaction_id),
            card_type: draft.card.card_type,
            card_number: draft.card.masked.clone(),
            card_token: draft.card.token.clone(),
            card_holder_name: draft.card.holder.clone(),
            customer_code: draft.customer_code,
            invoice_number: draft.invoice_number,
            approval_code: if declined {
                String::new()
            } else {
                accounts::code(rng, 6)
            },
            avs_response: ["X", "Y", "A", "Z", "N"][rng.random_range(0..5)],
            cvv_response: if declined { "N" } else { "M" },
            user: ["Helcim System", "API", "Smart Terminal"][rng.random_range(0..3)],
        });
        self.activity.transactions.len() - 1
    }

    /// The Mountain Time date of the batch close that follows `at`.
    fn close_date(&self, at: DateTime<Utc>) -> NaiveDate {
        let local = at.with_timezone(&HELCIM_TIME_ZONE);
        let date = local.date_naive();
        let close = NaiveTime::from_hms_opt(self.config.batch_close_hour, 0, 0).expect("hour < 24");
        if local.time() < close {
            date
        } else {
            date + Duration::days(1)
        }
    }

    fn batch_for(
        &mut self,
        profile: &AccountProfile,
        terminal_id: &str,
        currency: &'static str,
        at: DateTime<Utc>,
    ) -> u64 {
        let close_date = self.close_date(at);
        let key = (terminal_id.to_string(), close_date);
        if let Some(&index) = self.open_batches.get(&key) {
            let batch = &mut self.activity.batches[index];
            batch.updated_at = at;
            return batch.card_batch_id;
        }
        let closes_at = mountain_instant(close_date, self.config.batch_close_hour);
        let number = self
            .batch_numbers
            .entry(terminal_id.to_string())
            .or_insert(0);
        *number += 1;
        let card_batch_id = self.next_batch_id;
        self.next_batch_id += 1;
        self.activity.batches.push(Batch {
            account_id: profile.account.account_id.clone(),
            card_batch_id,
            terminal_id: terminal_id.to_string(),
            batch_number: *number,
            currency,
            created_at: at,
            updated_at: at,
            closed_at: (closes_at <= self.config.end()).then_some(closes_at),
            stats: BatchStats::default(),
            stats_offset_minor: 0,
        });
        self.open_batches
            .insert(key, self.activity.batches.len() - 1);
        card_batch_id
    }

    fn cancel(
        &mut self,
        profile: &AccountProfile,
        account: usize,
        at: DateTime<Utc>,
        rng: &mut ChaCha8Rng,
    ) {
        let terminal = &profile.account.terminals[profile.pick_terminal(rng)];
        self.states[account].invoice_seq += 1;
        self.activity.terminal_cancels.push(TerminalCancel {
            account_id: profile.account.account_id.clone(),
            invoice_number: format!(
                "INV{:03}{:06}",
                account + 1,
                self.states[account].invoice_seq
            ),
            device_code: accounts::code(rng, 4),
            amount_minor: amounts::purchase(rng),
            currency: terminal.currency,
            customer_code: profile.customer(rng),
            cancelled_at: at,
        });
    }

    fn finish(mut self) -> Activity {
        let mut stats: HashMap<u64, BatchStats> = HashMap::new();
        for tx in &self.activity.transactions {
            stats
                .entry(tx.card_batch_id)
                .or_default()
                .add(tx, |id| self.activity.transaction(id));
        }
        for batch in &mut self.activity.batches {
            batch.stats = stats.remove(&batch.card_batch_id).unwrap_or_default();
            if let Some(closed_at) = batch.closed_at {
                batch.updated_at = closed_at;
            }
        }
        self.activity
            .terminal_cancels
            .sort_by_key(|c| c.cancelled_at);
        self.activity
    }
}

/// A moment in the window, mostly in business hours, with some at night (which is
/// when the autumn daylight-saving hour repeats).
fn random_instant(config: &GenerateConfig, rng: &mut ChaCha8Rng) -> DateTime<Utc> {
    const HOUR_WEIGHTS: [u32; 24] = [
        1, 2, 1, 1, 1, 1, 2, 3, 5, 8, 9, 10, 10, 10, 9, 9, 9, 8, 7, 6, 5, 4, 3, 2,
    ];
    let total: u32 = HOUR_WEIGHTS.iter().sum();
    let mut pick = rng.random_range(0..total);
    let hour = HOUR_WEIGHTS
        .iter()
        .position(|&w| {
            if pick < w {
                true
            } else {
                pick -= w;
                false
            }
        })
        .unwrap_or(12) as u32;
    let day = config.start + Duration::days(i64::from(rng.random_range(0..config.days.max(1))));
    let (minute, second) = (rng.random_range(0..60), rng.random_range(0..60));
    let time = NaiveTime::from_hms_opt(hour, minute, second).expect("valid time");
    match HELCIM_TIME_ZONE.from_local_datetime(&day.and_time(time)) {
        LocalResult::Single(at) => at.with_timezone(&Utc),
        LocalResult::Ambiguous(first, second) => {
            if rng.random_bool(0.5) { first } else { second }.with_timezone(&Utc)
        }
        // The skipped spring hour never happened on a clock: move it an hour on.
        LocalResult::None => {
            mountain_instant(day, hour + 1)
                + Duration::minutes(i64::from(minute))
                + Duration::seconds(i64::from(second))
        }
    }
}

/// `date` at `hour`:00 Mountain Time, in UTC.
pub(crate) fn mountain_instant(date: NaiveDate, hour: u32) -> DateTime<Utc> {
    let local = date.and_time(NaiveTime::from_hms_opt(hour, 0, 0).expect("hour < 24"));
    match HELCIM_TIME_ZONE.from_local_datetime(&local) {
        LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => at.with_timezone(&Utc),
        LocalResult::None => (HELCIM_TIME_ZONE
            .from_local_datetime(&(local + Duration::hours(1)))
            .earliest()
            .expect("an hour after a gap exists"))
        .with_timezone(&Utc),
    }
}

#[cfg(test)]
mod tests;
