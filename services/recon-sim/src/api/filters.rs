//! The list endpoints' query parameters, checked as Helcim checks them.

use std::collections::HashMap;

use chrono::NaiveDate;

use crate::HELCIM_TIME_ZONE;
use crate::activity::{Batch, Transaction};

type Invalid = (&'static str, String);

/// Filters of `GET /v2/card-transactions`.
#[derive(Debug, Default)]
pub(super) struct TransactionFilter {
    date_from: Option<NaiveDate>,
    date_to: Option<NaiveDate>,
    card_batch_id: Option<u64>,
    customer_code: Option<String>,
    invoice_number: Option<String>,
    card_token: Option<String>,
    search: Option<String>,
    pub limit: usize,
    page: usize,
}

impl TransactionFilter {
    pub fn parse(query: &HashMap<String, String>) -> Result<Self, Invalid> {
        let text = |name: &str| query.get(name).filter(|v| !v.is_empty()).cloned();
        let limit = number(query, "limit")?.unwrap_or(1000);
        if !(1..=1000).contains(&limit) {
            return Err(("limit", "must be between 1 and 1000".into()));
        }
        let page = number(query, "page")?.unwrap_or(1);
        if page == 0 {
            return Err(("page", "must be 1 or more".into()));
        }
        Ok(TransactionFilter {
            date_from: date(query, "dateFrom")?,
            date_to: date(query, "dateTo")?,
            card_batch_id: number(query, "cardBatchId")?,
            customer_code: text("customerCode"),
            invoice_number: text("invoiceNumber"),
            card_token: text("cardToken"),
            search: text("search").map(|s| s.to_lowercase()),
            limit: limit as usize,
            page: page as usize,
        })
    }

    pub fn offset(&self) -> usize {
        (self.page - 1) * self.limit
    }

    /// Dates compare in Mountain Time, inclusive, as Helcim's do.
    pub fn matches(&self, tx: &Transaction) -> bool {
        let day = tx.created_at.with_timezone(&HELCIM_TIME_ZONE).date_naive();
        let same = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        self.date_from.is_none_or(|from| day >= from)
            && self.date_to.is_none_or(|to| day <= to)
            && self.card_batch_id.is_none_or(|id| id == tx.card_batch_id)
            && same(&self.customer_code, &tx.customer_code)
            && same(&self.invoice_number, &tx.invoice_number)
            && same(&self.card_token, &tx.card_token)
            && self.search.as_deref().is_none_or(|needle| {
                [
                    &tx.customer_code,
                    &tx.invoice_number,
                    &tx.card_holder_name,
                    &tx.transaction_id.to_string(),
                ]
                .iter()
                .any(|field| field.to_lowercase().contains(needle))
            })
    }
}

/// Filters of `GET /v2/card-batches`.
#[derive(Debug, Default)]
pub(super) struct BatchFilter {
    batch_number: Option<u64>,
    terminal_id: Option<String>,
    pub collect_stats: bool,
}

impl BatchFilter {
    pub fn parse(query: &HashMap<String, String>) -> Result<Self, Invalid> {
        Ok(BatchFilter {
            batch_number: number(query, "batchNumber")?,
            terminal_id: query.get("terminalId").filter(|v| !v.is_empty()).cloned(),
            collect_stats: collect_stats(query),
        })
    }

    pub fn matches(&self, batch: &Batch) -> bool {
        self.batch_number.is_none_or(|n| n == batch.batch_number)
            && self
                .terminal_id
                .as_deref()
                .is_none_or(|t| t == batch.terminal_id)
    }
}

pub(super) fn collect_stats(query: &HashMap<String, String>) -> bool {
    query
        .get("collect-stats")
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
}

fn number(query: &HashMap<String, String>, name: &'static str) -> Result<Option<u64>, Invalid> {
    match query.get(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|_| (name, format!("{text:?} is not a whole number"))),
    }
}

fn date(query: &HashMap<String, String>, name: &'static str) -> Result<Option<NaiveDate>, Invalid> {
    match query.get(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| (name, format!("{text:?} is not a YYYY-MM-DD date"))),
    }
}
