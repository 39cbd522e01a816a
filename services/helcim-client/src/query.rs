//! Filters for the list endpoints.

use chrono::{DateTime, NaiveDate, Utc};

use crate::model::CardBatchId;
use crate::mountain_time;

/// The most transactions Helcim returns in one page (and its default page size).
pub const MAX_PAGE_SIZE: u32 = 1000;

/// Filters for `GET /card-transactions`. Dates are **Mountain Time** calendar dates,
/// inclusive, as Helcim reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionQuery {
    pub date_from: Option<NaiveDate>,
    pub date_to: Option<NaiveDate>,
    pub card_batch_id: Option<CardBatchId>,
    pub customer_code: Option<String>,
    pub invoice_number: Option<String>,
    pub card_token: Option<String>,
    pub search: Option<String>,
    /// Page size, 1 to 1000.
    pub limit: u32,
}

impl Default for TransactionQuery {
    fn default() -> Self {
        TransactionQuery {
            date_from: None,
            date_to: None,
            card_batch_id: None,
            customer_code: None,
            invoice_number: None,
            card_token: None,
            search: None,
            limit: MAX_PAGE_SIZE,
        }
    }
}

impl TransactionQuery {
    /// Transactions created on these Mountain Time dates, inclusive.
    pub fn dates(from: NaiveDate, to: NaiveDate) -> Self {
        TransactionQuery {
            date_from: Some(from),
            date_to: Some(to),
            ..TransactionQuery::default()
        }
    }

    /// The Mountain Time dates that cover a UTC interval. Helcim filters by whole
    /// days, so the answer may include transactions either side of the interval.
    pub fn covering(from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        TransactionQuery::dates(mountain_time::date_of(from), mountain_time::date_of(to))
    }

    /// Every transaction of one card batch.
    pub fn batch(id: CardBatchId) -> Self {
        TransactionQuery {
            card_batch_id: Some(id),
            ..TransactionQuery::default()
        }
    }

    pub fn with_limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }

    /// Query parameters for one page (pages count from 1).
    pub(crate) fn params(&self, page: u32) -> Vec<(&'static str, String)> {
        let mut params = Vec::new();
        let date = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
        if let Some(from) = self.date_from {
            params.push(("dateFrom", date(from)));
        }
        if let Some(to) = self.date_to {
            params.push(("dateTo", date(to)));
        }
        if let Some(batch) = self.card_batch_id {
            params.push(("cardBatchId", batch.to_string()));
        }
        let texts = [
            ("customerCode", &self.customer_code),
            ("invoiceNumber", &self.invoice_number),
            ("cardToken", &self.card_token),
            ("search", &self.search),
        ];
        for (name, value) in texts {
            if let Some(value) = value {
                params.push((name, value.clone()));
            }
        }
        params.push(("limit", self.limit.to_string()));
        params.push(("page", page.to_string()));
        params
    }
}

/// Filters for `GET /card-batches` (stats are always requested).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchQuery {
    pub batch_number: Option<u64>,
    pub terminal_id: Option<String>,
}

impl BatchQuery {
    pub(crate) fn params(&self) -> Vec<(&'static str, String)> {
        let mut params = vec![("collect-stats", "true".to_string())];
        if let Some(number) = self.batch_number {
            params.push(("batchNumber", number.to_string()));
        }
        if let Some(terminal) = &self.terminal_id {
            params.push(("terminalId", terminal.clone()));
        }
        params
    }
}
