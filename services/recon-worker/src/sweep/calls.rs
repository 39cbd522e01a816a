//! The sweeps' Helcim calls, each counted (for `sweep_runs.api_calls` and
//! `worker_helcim_calls_total{call}`): list calls of up to 1,000 per page, and one
//! batch GET at a time; never one call per transaction.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use helcim_client::{
    CardBatch, CardBatchId, CardTransaction, Fetched, HelcimClient, HelcimError, TransactionQuery,
    Unreadable,
};

/// Every page of a transaction listing.
#[derive(Debug, Default)]
pub struct Listed {
    /// Each with the time its page's request was about to be sent (no later than the
    /// real send: an answer is never taken for newer than it is).
    pub items: Vec<Fetched<CardTransaction>>,
    /// Items that did not read as a transaction, with their page's time.
    pub unreadable: Vec<(Unreadable, DateTime<Utc>)>,
    /// When the first page's request was about to be sent.
    pub started_at: Option<DateTime<Utc>>,
}

impl Listed {
    /// Ids of everything listed, unreadable items included when their id reads (an
    /// item that could not be read is still at Helcim).
    pub fn ids(&self) -> HashSet<u64> {
        let mut ids: HashSet<u64> = self.items.iter().map(|t| t.value.id.0).collect();
        ids.extend(self.unreadable.iter().filter_map(|(u, _)| unreadable_id(u)));
        ids
    }
}

/// The `transactionId` of an unreadable item, when that much reads.
pub fn unreadable_id(item: &Unreadable) -> Option<u64> {
    let id = item.raw.get("transactionId")?;
    id.as_u64()
        .or_else(|| id.as_str().and_then(|s| s.trim().parse().ok()))
}

/// Counts the calls of one pass.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CallCount(pub u32);

impl CallCount {
    fn spend(&mut self, call: &'static str) {
        self.0 += 1;
        metrics::counter!("worker_helcim_calls_total", "call" => call).increment(1);
    }
}

/// Every page of `GET /card-transactions` for `query` (pages of 1,000 until a short
/// one), each page counted as one call.
pub async fn list_transactions(
    client: &HelcimClient,
    query: &TransactionQuery,
    calls: &mut CallCount,
) -> Result<Listed, HelcimError> {
    let mut listed = Listed::default();
    let mut seen = HashSet::new();
    for page in 1.. {
        let sent_at = Utc::now();
        listed.started_at.get_or_insert(sent_at);
        calls.spend("list_card_transactions");
        let answer = client.card_transactions_page(query, page).await?;
        let page_len = answer.items.len() + answer.unreadable.len();
        let new = answer.items.iter().filter(|t| seen.insert(t.id.0)).count();
        if page_len > 0 && new == 0 && answer.unreadable.is_empty() {
            // A server that ignores `page` would otherwise be read forever.
            return Err(HelcimError::Decode {
                what: format!("card transactions page {page}"),
                reason: "the page repeats transactions already listed; paging stopped".into(),
            });
        }
        listed.items.extend(
            answer
                .items
                .into_iter()
                .map(|value| Fetched { value, sent_at }),
        );
        listed
            .unreadable
            .extend(answer.unreadable.into_iter().map(|u| (u, sent_at)));
        if page_len < query.limit as usize {
            break;
        }
    }
    Ok(listed)
}

/// `GET /card-batches/{id}?collect-stats=true`, counted.
pub async fn batch(
    client: &HelcimClient,
    id: CardBatchId,
    calls: &mut CallCount,
) -> Result<Fetched<CardBatch>, HelcimError> {
    calls.spend("card_batch_sweep");
    client.card_batch(id).await
}
