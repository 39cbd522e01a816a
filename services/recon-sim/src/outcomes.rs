//! How the run-time flows end, whoever ends them (a control call, or a Smart
//! Terminal's timer): a HelcimPay.js checkout completed by the shopper's browser, a
//! Smart Terminal request approved, declined or cancelled by the customer, a sale
//! made in Helcim's own tools, and a referred merchant's new account. Each records
//! what it made in the ledger and announces it by webhook.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::activity::{Account, Kind, Status, TerminalCancel};
use crate::api::{card_on_file, decline_for_amount};
use crate::ledger::{CardOnFile, Ledger, NewTransaction, now};
use crate::state::SimState;
use crate::webhooks::LiveEvent;
use crate::{format_mountain, render};

/// How a customer-facing flow ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Approve,
    Decline,
    /// Smart Terminal only: the customer cancelled on the device.
    Cancel,
}

/// A refusal of a control call: status and reason.
pub type Refusal = (u16, String);

/// Helcim's published test cards; flows without card data pay with one of them.
const TEST_CARDS: [&str; 3] = ["4124939999999990", "5413330089099130", "374245001751006"];

fn test_card(account_id: &str, n: u64, seed: u64) -> CardOnFile {
    let number = TEST_CARDS[(n % 3) as usize];
    card_on_file(account_id, number, "Helcim Test".to_string(), seed)
}

/// The default outcome: approved unless the amount ends in `.05`.
fn default_outcome(amount_minor: i64) -> Outcome {
    if decline_for_amount(amount_minor).is_some() {
        Outcome::Decline
    } else {
        Outcome::Approve
    }
}

/// Records `new`, announces it, and answers it as the truth shows it.
fn commit(
    state: &SimState,
    mut ledger: std::sync::RwLockWriteGuard<'_, Ledger>,
    new: NewTransaction,
    after: impl FnOnce(&mut Ledger, u64),
) -> Result<Value, Refusal> {
    let tx = ledger.record(new).map_err(|reason| (409, reason))?.clone();
    after(&mut ledger, tx.transaction_id);
    let event = SimState::card_transaction_event(&ledger, &tx);
    let truth = serde_json::to_value(ledger.truth_of(&tx)).expect("a transaction serialises");
    drop(ledger);
    state.announce(event);
    Ok(truth)
}

/// Completes a HelcimPay.js checkout as the shopper's browser would.
pub fn complete_checkout(
    state: &SimState,
    checkout_token: &str,
    outcome: Option<Outcome>,
) -> Result<Value, Refusal> {
    let ledger = state.ledger_mut();
    let next_id = ledger.activity.transactions.len() as u64;
    let Some(checkout) = ledger
        .checkouts
        .iter()
        .find(|c| c.checkout_token == checkout_token)
        .cloned()
    else {
        return Err((
            404,
            format!("no checkout {checkout_token:?}: call POST /v2/helcim-pay/initialize first"),
        ));
    };
    if let Some(id) = checkout.transaction_id {
        return Err((
            409,
            format!("this checkout was already completed: transaction {id}"),
        ));
    }
    let outcome = outcome.unwrap_or_else(|| default_outcome(checkout.amount_minor));
    if outcome == Outcome::Cancel {
        return Err((
            400,
            "a checkout is approved or declined; only a Smart Terminal cancels".into(),
        ));
    }
    let new = NewTransaction {
        account_id: checkout.account_id.clone(),
        kind: checkout.payment_type,
        status: status(outcome),
        amount_minor: checkout.amount_minor,
        currency: checkout.currency,
        terminal_id: None,
        original_transaction_id: None,
        card: test_card(&checkout.account_id, next_id, state.seed),
        customer_code: checkout.customer_code.clone(),
        invoice_number: checkout.invoice_number.clone(),
        user: "HelcimPay.js",
        made_by: Some(checkout.made_by.clone()),
    };
    commit(state, ledger, new, |ledger, id| {
        if let Some(c) = ledger
            .checkouts
            .iter_mut()
            .find(|c| c.checkout_token == checkout_token)
        {
            c.transaction_id = Some(id);
        }
    })
}

fn status(outcome: Outcome) -> Status {
    if outcome == Outcome::Approve {
        Status::Approved
    } else {
        Status::Declined
    }
}

/// Ends the payment request on a Smart Terminal: a transaction (approved or declined)
/// or a cancel. `serial` set: only that request (the timer's, which may come too late).
pub fn complete_device(
    state: &SimState,
    code: &str,
    serial: Option<u64>,
    outcome: Option<Outcome>,
) -> Result<Value, Refusal> {
    let mut ledger = state.ledger_mut();
    let Some(device) = ledger.devices.iter_mut().find(|d| {
        d.code == code
            && d.pending
                .as_ref()
                .is_some_and(|p| serial.is_none_or(|s| s == p.serial))
    }) else {
        return Err((
            404,
            format!("device {code:?} has no payment request waiting"),
        ));
    };
    let pending = device.pending.take().expect("found with one");
    let (account_id, terminal_id) = (device.account_id.clone(), device.terminal_id.clone());
    let outcome = outcome.unwrap_or_else(|| default_outcome(pending.amount_minor));
    if outcome == Outcome::Cancel {
        let cancel = TerminalCancel {
            account_id: account_id.clone(),
            invoice_number: pending.invoice_number,
            device_code: code.to_string(),
            amount_minor: pending.amount_minor,
            currency: pending.currency,
            customer_code: pending.customer_code,
            cancelled_at: now(),
        };
        let event = LiveEvent {
            account_id: account_id.clone(),
            event_type: "terminalCancel",
            transaction_id: None,
            body: render::terminal_cancel_webhook(&cancel),
            verifier_tokens: verifier_tokens(&ledger, &account_id),
        };
        let answer = json!({"terminalCancel": &cancel});
        ledger.activity.terminal_cancels.push(cancel);
        drop(ledger);
        state.announce(event);
        return Ok(answer);
    }
    let new = NewTransaction {
        account_id: account_id.clone(),
        kind: pending.kind,
        status: status(outcome),
        amount_minor: pending.amount_minor,
        currency: pending.currency,
        terminal_id: Some(terminal_id),
        original_transaction_id: None,
        card: test_card(&account_id, pending.serial, state.seed),
        customer_code: pending.customer_code,
        invoice_number: pending.invoice_number,
        user: "Smart Terminal",
        made_by: Some(pending.made_by),
    };
    commit(state, ledger, new, |_, _| {}).map(|truth| json!({"transaction": truth}))
}

fn verifier_tokens(ledger: &Ledger, account_id: &str) -> Vec<String> {
    ledger
        .activity
        .account(account_id)
        .map(|a| a.verifier_tokens.clone())
        .unwrap_or_default()
}

/// A sale made in Helcim's own tools (the app, the virtual terminal): no partner
/// request made it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sale {
    pub amount: Value,
    pub currency: Option<String>,
    pub invoice_number: Option<String>,
    pub customer_code: Option<String>,
    /// `purchase` (default), `preauth`, `verify` or `refund` (a refund with no original).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// `approve` (default) or `decline`.
    pub outcome: Option<Outcome>,
}

pub fn record_sale(state: &SimState, account_id: &str, sale: Sale) -> Result<Value, Refusal> {
    let ledger = state.ledger_mut();
    let Some(account) = ledger.activity.account(account_id) else {
        return Err((404, format!("no account {account_id:?}")));
    };
    let currency = match sale.currency.as_deref() {
        Some(text) => text
            .parse::<recon_money::Currency>()
            .map_err(|e| (400, e.to_string()))?
            .code(),
        None => account.terminals.first().map_or("CAD", |t| t.currency),
    };
    let amount_text = match &sale.amount {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => {
            return Err((
                400,
                "amount must be a decimal number or string, e.g. \"12.34\"".into(),
            ));
        }
    };
    let amount_minor =
        recon_money::parse_minor_units(&amount_text, 2).map_err(|e| (400, e.to_string()))?;
    if amount_minor <= 0 {
        return Err((400, "amount must be more than 0".into()));
    }
    let kind = match sale.kind.as_deref().unwrap_or("purchase") {
        "purchase" => Kind::Purchase,
        "preauth" => Kind::Preauth,
        "verify" => Kind::Verify,
        "refund" => Kind::Refund,
        other => {
            return Err((
                400,
                format!("type {other:?} is not one of purchase, preauth, verify, refund"),
            ));
        }
    };
    let outcome = sale.outcome.unwrap_or(Outcome::Approve);
    if outcome == Outcome::Cancel {
        return Err((400, "a sale is approved or declined".into()));
    }
    let next = ledger.activity.transactions.len() as u64;
    let new = NewTransaction {
        account_id: account_id.to_string(),
        kind,
        status: status(outcome),
        amount_minor: if kind == Kind::Verify {
            0
        } else {
            amount_minor
        },
        currency,
        terminal_id: None,
        original_transaction_id: None,
        card: test_card(account_id, next, state.seed),
        customer_code: sale.customer_code.unwrap_or_default(),
        invoice_number: sale.invoice_number.unwrap_or_default(),
        user: "Helcim System",
        made_by: None,
    };
    commit(state, ledger, new, |_, _| {})
}

/// A merchant `referred_by` referred registers: a new account, and a `connectedAccount`
/// webhook to the referring account carrying the new account's id and API token.
pub fn connect_account(
    state: &SimState,
    referred_by: &str,
    currencies: &[&'static str],
) -> Result<Account, Refusal> {
    let mut ledger = state.ledger_mut();
    if ledger.activity.account(referred_by).is_none() {
        return Err((404, format!("no account {referred_by:?}")));
    }
    let account = ledger.connect_account(referred_by, currencies);
    let body = json!({
        "type": "connectedAccount",
        "data": {
            "connectedAccountId": account.account_id,
            "apiToken": account.api_token,
            "businessName": format!("Connected Merchant {}", account.account_id),
            "status": "APPROVED",
            "dateCreated": format_mountain(now()),
        }
    });
    let event = LiveEvent {
        account_id: referred_by.to_string(),
        event_type: "connectedAccount",
        transaction_id: None,
        body: body.to_string(),
        verifier_tokens: verifier_tokens(&ledger, referred_by),
    };
    drop(ledger);
    state.announce(event);
    Ok(account)
}
