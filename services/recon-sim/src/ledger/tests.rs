use super::*;
use crate::GenerateConfig;

fn ledger() -> Ledger {
    Ledger::new(crate::generate(&GenerateConfig::default()), 1)
}

fn card() -> CardOnFile {
    CardOnFile {
        card_type: "VI",
        masked: "4124939990".into(),
        token: "TOKEN".into(),
        holder: "Helcim Test".into(),
    }
}

fn purchase(account_id: &str, currency: &'static str, amount_minor: i64) -> NewTransaction {
    NewTransaction {
        account_id: account_id.into(),
        kind: Kind::Purchase,
        status: Status::Approved,
        amount_minor,
        currency,
        terminal_id: None,
        original_transaction_id: None,
        card: card(),
        customer_code: String::new(),
        invoice_number: String::new(),
        user: "API",
        made_by: None,
    }
}

#[test]
fn a_run_time_payment_joins_the_open_batch_of_its_currency_and_its_totals() {
    let mut ledger = ledger();
    let account = ledger.activity.accounts[0].account_id.clone();
    let usd = ledger
        .terminal_for(&account, "USD")
        .unwrap()
        .terminal_id
        .clone();
    let open = ledger
        .activity
        .batches
        .iter()
        .rev()
        .find(|b| b.terminal_id == usd && b.closed_at.is_none())
        .unwrap()
        .clone();
    let last_id = ledger.activity.transactions.last().unwrap().transaction_id;
    let tx = ledger
        .record(purchase(&account, "USD", 1234))
        .unwrap()
        .clone();
    assert!(tx.transaction_id > last_id);
    assert_eq!(tx.card_batch_id, open.card_batch_id);
    assert_eq!(tx.terminal_id, usd);
    assert!(
        tx.invoice_number.starts_with("INV9"),
        "{}",
        tx.invoice_number
    );
    let batch = ledger.activity.batch(open.card_batch_id).unwrap();
    assert_eq!(batch.stats.total_sales, open.stats.total_sales + 1234);
    assert_eq!(batch.stats.count_total, open.stats.count_total + 1);
    assert_eq!(
        ledger
            .transaction_of(&account, tx.transaction_id)
            .unwrap()
            .amount_minor,
        1234
    );
    assert!(
        ledger
            .transactions_of(&account)
            .any(|t| t.transaction_id == tx.transaction_id)
    );
    assert!(
        ledger
            .transaction_of("sim-merchant-2", tx.transaction_id)
            .is_none()
    );
}

#[test]
fn a_terminal_without_an_open_batch_gets_a_new_one() {
    let mut ledger = Ledger::new(
        crate::generate(&GenerateConfig {
            transactions_per_account: 0,
            ..GenerateConfig::default()
        }),
        1,
    );
    let account = ledger.activity.accounts[0].account_id.clone();
    let first = ledger
        .record(purchase(&account, "CAD", 500))
        .unwrap()
        .clone();
    let second = ledger
        .record(purchase(&account, "CAD", 700))
        .unwrap()
        .clone();
    assert_eq!(first.card_batch_id, second.card_batch_id);
    let batch = ledger.activity.batch(first.card_batch_id).unwrap();
    assert_eq!((batch.batch_number, batch.closed_at), (1, None));
    assert_eq!(batch.stats.net_sales, 1200);
}

#[test]
fn a_currency_without_a_terminal_is_refused() {
    let mut ledger = ledger();
    let cad_only = ledger
        .activity
        .accounts
        .iter()
        .find(|a| a.terminals.iter().all(|t| t.currency == "CAD"));
    let Some(account) = cad_only.map(|a| a.account_id.clone()) else {
        let account = ledger
            .connect_account("sim-merchant-1", &["CAD"])
            .account_id;
        assert!(ledger.record(purchase(&account, "USD", 1)).is_err());
        return;
    };
    assert!(ledger.record(purchase(&account, "USD", 1)).is_err());
}

#[test]
fn a_connected_account_has_its_own_tokens_terminal_and_listening_device() {
    let mut ledger = ledger();
    let account = ledger.connect_account("sim-merchant-1", &["CAD", "USD"]);
    assert_eq!(account.account_id, "sim-merchant-3");
    assert_eq!(
        ledger.caller(Some(&account.api_token)),
        Caller::Account(account.account_id.clone())
    );
    assert_eq!(account.terminals.len(), 2);
    let devices: Vec<_> = ledger
        .devices
        .iter()
        .filter(|d| d.account_id == account.account_id)
        .collect();
    assert_eq!(devices.len(), 1);
    assert!(devices[0].listening);
    assert_eq!(ledger.connected_accounts[0].referred_by, "sim-merchant-1");
    let tx = ledger
        .record(purchase(&account.account_id, "USD", 99))
        .unwrap();
    assert_eq!(tx.account_id, "sim-merchant-3");
}
