//! What one verified webhook leads to. Every path ends in a [`Fate`]: done (ack after
//! the commit), retry later (a transaction Helcim does not show yet, counted toward a
//! limit), a dependency down (Helcim's rate limits, 5xx and timeouts, or Postgres: not
//! the message's fault, given up on only by time), or dead-letter (permanent, with the
//! reason).

use std::time::Duration;

use helcim_client::{
    CardBatch, CardBatchId, Currency, Fetched, HelcimClient, HelcimError, RawAnswer, TransactionId,
};
use recon_queue::WebhookEnvelope;

use crate::batch_cache::BatchCache;
use crate::clients::{HelcimClients, NoClient};
use crate::ledger::{BatchAnswer, CARD_TRANSACTION, Ledger};
use crate::reconcile::{BatchView, reconcile};

/// How a job ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Committed (or nothing to do): acknowledge.
    Done(&'static str),
    /// Something about this message may settle with time (Helcim does not show the
    /// transaction yet, the account has no token yet): retry after the next delay, at
    /// most the configured number of times.
    Retry(String),
    /// Helcim is down or limiting us (5xx, 429, timeouts): not this message's fault.
    /// Retried until the give-up time, counted from when the webhook was received.
    Unavailable(String),
    /// Postgres failed. While it does not answer the worker pauses and holds the
    /// message; if it answers, the failure counts like [`Fate::Retry`].
    Database(String),
    /// Never going to work as it is: dead-letter with this reason.
    Dead(String),
}

pub const RECONCILED: &str = "reconciled";
pub const RECORDED: &str = "recorded";
pub const DUPLICATE: &str = "duplicate";
/// A `connectedAccount` delivery that registered the merchant or replaced its token.
pub const REGISTERED: &str = "registered";
/// A `connectedAccount` delivery whose merchant was left unregistered (its id or its
/// token belongs to another account: see the worker's warning).
pub const NOT_REGISTERED: &str = "not registered";

/// The delivery's outcome for what registering its connected account did.
fn registered_outcome(registration: &crate::connected::Registration) -> &'static str {
    use crate::connected::Registration as R;
    match registration {
        R::Registered { .. } | R::Updated { .. } => REGISTERED,
        R::IdTaken { .. } | R::TokenRegistered { .. } => NOT_REGISTERED,
        R::Off | R::Unchanged { .. } => RECORDED,
    }
}

/// Everything processing needs.
#[derive(Debug)]
pub struct Processor {
    pub ledger: Ledger,
    pub clients: HelcimClients,
    batches: BatchCache,
    /// Where `connectedAccount` tokens go (see [`crate::connected`]).
    pub connected: Option<crate::connected::ConnectedIntake>,
}

impl Processor {
    pub fn new(ledger: Ledger, clients: HelcimClients, open_batch_refresh: Duration) -> Self {
        Processor {
            ledger,
            clients,
            batches: BatchCache::new(open_batch_refresh),
            connected: None,
        }
    }

    pub async fn process(&self, envelope: &WebhookEnvelope) -> Fate {
        let announced = (envelope.event_type == "cardTransaction")
            .then(|| {
                envelope
                    .object_id
                    .as_deref()
                    .and_then(|id| id.trim().parse::<u64>().ok())
            })
            .flatten();
        let already_done = match self.ledger.record_delivery(envelope, announced).await {
            Ok(done) => done,
            Err(error) => return Fate::Database(format!("database: {error}")),
        };
        if already_done {
            return Fate::Done(DUPLICATE);
        }
        let mut outcome = RECORDED;
        if envelope.sealed_secrets.is_some() {
            let Some(connected) = &self.connected else {
                return Fate::Retry("this worker does not store connected accounts".into());
            };
            match connected.record(envelope).await {
                Ok(registration) => {
                    if let Some(account) = registration.as_ref().and_then(|r| r.changed_account()) {
                        // Its next transaction is fetched with the new token at once.
                        self.clients.forget(account);
                    }
                    outcome = registration.as_ref().map_or(RECORDED, registered_outcome);
                }
                Err(fate) => return fate,
            }
        }
        if envelope.event_type != "cardTransaction" {
            // Terminal cancels and event types this version does not know are kept
            // (the delivery row holds the raw body), not dropped.
            return match self.ledger.complete(envelope, outcome).await {
                Ok(()) => Fate::Done(outcome),
                Err(error) => Fate::Database(format!("database: {error}")),
            };
        }
        let Some(id) = envelope
            .object_id
            .as_deref()
            .and_then(|id| id.trim().parse::<u64>().ok())
        else {
            return Fate::Dead(format!(
                "cardTransaction event without a numeric transaction id (id: {:?})",
                envelope.object_id
            ));
        };
        match self.card_transaction(envelope, TransactionId(id)).await {
            Ok(()) => Fate::Done(RECONCILED),
            Err(fate) => fate,
        }
    }

    async fn card_transaction(
        &self,
        envelope: &WebhookEnvelope,
        id: TransactionId,
    ) -> Result<(), Fate> {
        let account = envelope.account_id.as_str();
        let database = |e: sqlx::Error| Fate::Database(format!("database: {e}"));
        let client = self.clients.get(account).await.map_err(no_client_fate)?;
        metrics::counter!("worker_helcim_calls_total", "call" => "card_transaction").increment(1);
        let tx = match client.card_transaction(id).await {
            Ok(tx) => tx,
            Err(error) => return Err(self.transaction_failed(account, id, error).await),
        };
        let FetchedBatch { known, gate } = match tx.value.card_batch_id {
            Some(batch_id) => self.batch(account, &client, batch_id).await?,
            None => FetchedBatch {
                known: Known::Missing,
                gate: None,
            },
        };
        let batch_currency = match tx.value.card_batch_id {
            Some(batch_id) => self
                .batch_currency(account, batch_id)
                .await
                .map_err(database)?,
            None => None,
        };
        let batch_current = self
            .ledger
            .store(envelope, &tx, known.to_store(), |newer| {
                let view = newer.map_or(known.view(), BatchView::Read);
                reconcile(&tx.value, view, batch_currency)
            })
            .await
            .map_err(database)?;
        if let (Known::Fetched(fetched), true) = (known, batch_current) {
            // Cached only once stored, so a failed commit leaves no batch unwritten; and
            // only when it is the ledger's newest answer, so no job reads an older one.
            self.batches.put(account, fetched.into_inner());
        }
        drop(gate);
        if let (Some(batch_id), None) = (tx.value.card_batch_id, batch_currency) {
            // The first stored transaction set the batch's currency in the ledger.
            self.batches
                .set_currency(account, batch_id, tx.value.amount.currency);
        }
        Ok(())
    }

    /// A transaction Helcim answered unreadably is dead-lettered, its answer kept as
    /// received so nothing Helcim said is lost; other failures sort as usual.
    async fn transaction_failed(
        &self,
        account: &str,
        id: TransactionId,
        error: HelcimError,
    ) -> Fate {
        let HelcimError::Unreadable { reason, answer, .. } = &error else {
            return helcim_fate(error, "the transaction");
        };
        metrics::counter!("worker_unreadable_answers_total", "kind" => CARD_TRANSACTION)
            .increment(1);
        match self
            .ledger
            .keep_unreadable(account, CARD_TRANSACTION, id.0, reason, answer)
            .await
        {
            Ok(payload) => Fate::Dead(format!(
                "{error}; Helcim's answer is kept as received in helcim_payloads (id \
                 {payload}); replay this dead letter once the cause is fixed"
            )),
            // Not kept yet: try again rather than lose the answer.
            Err(db) => Fate::Database(format!(
                "database: {db} (while keeping an unreadable answer)"
            )),
        }
    }

    /// The batch's currency in the ledger: remembered once known (it never changes),
    /// read from Postgres otherwise.
    async fn batch_currency(
        &self,
        account: &str,
        id: CardBatchId,
    ) -> Result<Option<Currency>, sqlx::Error> {
        if let Some(currency) = self.batches.currency(account, id) {
            return Ok(Some(currency));
        }
        let currency = self.ledger.batch_currency(account, id.0).await?;
        if let Some(currency) = currency {
            self.batches.set_currency(account, id, currency);
        }
        Ok(currency)
    }

    /// The batch, from the cache when closed (closed batches do not change) or
    /// recently stored; otherwise from Helcim. `(None, ..)`: Helcim does not know it.
    /// A fetch holds the batch's gate, returned to the caller and kept until the batch
    /// is stored: jobs that arrive together wait and then take the cached answer,
    /// rather than each spending a call of the account's budget.
    async fn batch(
        &self,
        account: &str,
        client: &HelcimClient,
        id: CardBatchId,
    ) -> Result<FetchedBatch, Fate> {
        let cached = |batch| FetchedBatch {
            known: Known::Cached(batch),
            gate: None,
        };
        if let Some(batch) = self.batches.get(account, id) {
            return Ok(cached(batch));
        }
        let gate = self.batches.gate(account, id).lock_owned().await;
        if let Some(batch) = self.batches.get(account, id) {
            return Ok(cached(batch));
        }
        metrics::counter!("worker_helcim_calls_total", "call" => "card_batch").increment(1);
        let known = match client.card_batch(id).await {
            Ok(batch) => Known::Fetched(batch),
            Err(error) if error.is_not_found() => Known::Missing,
            Err(HelcimError::Unreadable { reason, answer, .. }) => {
                // Not cached: each transaction of the batch asks again (and keeps what
                // it got), so a fix at Helcim is seen at once.
                metrics::counter!("worker_unreadable_answers_total", "kind" => crate::ledger::CARD_BATCH)
                    .increment(1);
                Known::Unreadable { id, reason, answer }
            }
            Err(error) => return Err(helcim_fate(error, "the card batch")),
        };
        Ok(FetchedBatch {
            known,
            gate: Some(gate),
        })
    }
}

/// A batch for one job, and (when fetched now) the gate held until it is stored.
struct FetchedBatch {
    known: Known,
    gate: Option<tokio::sync::OwnedMutexGuard<()>>,
}

/// What a job knows of its transaction's batch.
enum Known {
    /// Stored by an earlier job: nothing to store again.
    Cached(CardBatch),
    /// Fetched now: to store.
    Fetched(Fetched<CardBatch>),
    /// Helcim does not know it (or the transaction names none).
    Missing,
    /// Helcim answered unreadably: the answer is kept, the transaction stored with an
    /// exception.
    Unreadable {
        id: CardBatchId,
        reason: String,
        answer: RawAnswer,
    },
}

impl Known {
    fn view(&self) -> BatchView<'_> {
        match self {
            Known::Cached(batch) => BatchView::Read(batch),
            Known::Fetched(fetched) => BatchView::Read(&fetched.value),
            Known::Missing => BatchView::NotFound,
            Known::Unreadable { reason, .. } => BatchView::Unreadable(reason),
        }
    }

    fn to_store(&self) -> Option<BatchAnswer<'_>> {
        match self {
            Known::Fetched(fetched) => Some(BatchAnswer::Readable(fetched)),
            Known::Unreadable { id, reason, answer } => Some(BatchAnswer::Unreadable {
                id: *id,
                reason,
                answer,
            }),
            Known::Cached(_) | Known::Missing => None,
        }
    }
}

/// Why no client means "not now". A token that does not decrypt here is our
/// configuration (a key missing during a rotation), not the message's fault: it waits
/// like an outage, so fixing the keys lets every waiting message through without a
/// replay.
fn no_client_fate(error: NoClient) -> Fate {
    match error {
        // The operator may be adding the token right now: retry, then dead-letter.
        NoClient::NoToken(_) => Fate::Retry(error.to_string()),
        NoClient::Store(_) => Fate::Database(error.to_string()),
        NoClient::Unusable { .. } => Fate::Unavailable(error.to_string()),
    }
}

/// Transient Helcim failures (and a transaction not visible yet) are retried;
/// the rest need a person.
fn helcim_fate(error: HelcimError, what: &str) -> Fate {
    if error.is_transient() {
        Fate::Unavailable(error.to_string())
    } else if error.is_not_found() {
        Fate::Retry(format!("{what} is not at Helcim yet: {error}"))
    } else {
        Fate::Dead(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_that_does_not_decrypt_waits_like_an_outage_instead_of_dead_lettering() {
        let unusable = NoClient::Unusable {
            account: "m1".into(),
            reason: "encrypted under a key that is not configured".into(),
        };
        assert!(matches!(no_client_fate(unusable), Fate::Unavailable(r) if r.contains("m1")));
        assert!(matches!(
            no_client_fate(NoClient::NoToken("m1".into())),
            Fate::Retry(_)
        ));
        assert!(matches!(
            no_client_fate(NoClient::Store("down".into())),
            Fate::Database(_)
        ));
    }

    #[test]
    fn failures_sort_into_retry_and_dead() {
        let transient = HelcimError::Server {
            what: "x".into(),
            status: 503,
            attempts: 3,
            errors: Default::default(),
        };
        assert!(matches!(helcim_fate(transient, "t"), Fate::Unavailable(_)));
        let missing = HelcimError::NotFound {
            what: "x".into(),
            errors: Default::default(),
        };
        assert!(
            matches!(helcim_fate(missing, "the transaction"), Fate::Retry(r) if r.contains("not at Helcim yet"))
        );
        let refused = HelcimError::Unauthorized(Default::default());
        assert!(matches!(helcim_fate(refused, "t"), Fate::Dead(r) if r.contains("401")));
    }
}
