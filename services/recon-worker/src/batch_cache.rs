//! The worker's memory of card batches: closed ones (they do not change) and open ones
//! for a short while, the ledger's currency of each, and one gate per batch so that
//! jobs arriving together make one fetch between them. Bounded: each map is emptied
//! when it passes 50,000 entries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use helcim_client::{CardBatch, CardBatchId, Currency};

/// Serialises the fetches of one batch.
type Gate = Arc<tokio::sync::Mutex<()>>;

/// Batches fetched recently, and the ledger's currency of each, per account.
#[derive(Debug)]
pub(crate) struct BatchCache {
    open_refresh: Duration,
    entries: Mutex<HashMap<(String, CardBatchId), (Instant, CardBatch)>>,
    currencies: Mutex<HashMap<(String, CardBatchId), Currency>>,
    gates: Mutex<HashMap<(String, CardBatchId), Gate>>,
}

impl BatchCache {
    pub(crate) fn new(open_refresh: Duration) -> Self {
        BatchCache {
            open_refresh,
            entries: Mutex::new(HashMap::new()),
            currencies: Mutex::new(HashMap::new()),
            gates: Mutex::new(HashMap::new()),
        }
    }

    /// The lock that serialises fetches of one batch.
    pub(crate) fn gate(&self, account: &str, id: CardBatchId) -> Gate {
        let mut gates = self.gates.lock().expect("lock poisoned");
        if gates.len() > 50_000 {
            gates.clear();
        }
        Arc::clone(gates.entry((account.to_string(), id)).or_default())
    }

    pub(crate) fn get(&self, account: &str, id: CardBatchId) -> Option<CardBatch> {
        let entries = self.entries.lock().expect("lock poisoned");
        let (fetched, batch) = entries.get(&(account.to_string(), id))?;
        (batch.closed || fetched.elapsed() < self.open_refresh).then(|| batch.clone())
    }

    pub(crate) fn currency(&self, account: &str, id: CardBatchId) -> Option<Currency> {
        self.currencies
            .lock()
            .expect("lock poisoned")
            .get(&(account.to_string(), id))
            .copied()
    }

    pub(crate) fn set_currency(&self, account: &str, id: CardBatchId, currency: Currency) {
        let mut currencies = self.currencies.lock().expect("lock poisoned");
        if currencies.len() > 50_000 {
            currencies.clear();
        }
        currencies.insert((account.to_string(), id), currency);
    }

    pub(crate) fn put(&self, account: &str, batch: CardBatch) {
        let mut entries = self.entries.lock().expect("lock poisoned");
        if entries.len() > 50_000 {
            entries.clear();
        }
        entries.insert((account.to_string(), batch.id), (Instant::now(), batch));
    }
}
