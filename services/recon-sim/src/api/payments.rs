//! The Payment API: `POST /v2/payment/{purchase,preauth,verify,capture,refund,reverse,
//! withdraw}`. Each request that passes validation makes a transaction of the account
//! (approved, or declined by the rules in [`super::payment_request`]) in the open
//! batch of its terminal, announced by a `cardTransaction` webhook. An approval
//! answers 200 with the transaction as `GET /v2/card-transactions/{id}` renders it; a
//! decline answers 500 `{"errors": "Transaction Declined: ..."}`, as Helcim does.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::gate::{Answer, Call, Keys, partner_gate};
use super::payment_request::{Body, CardInput, decline_for_amount};
use crate::activity::{Kind, Status, Transaction};
use crate::ledger::{CardOnFile, Ledger, NewTransaction};
use crate::render;
use crate::state::SimState;

pub(super) async fn payment(
    req: HttpRequest,
    state: web::Data<SimState>,
    kind: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let Some(endpoint) = endpoint(&kind) else {
        return HttpResponse::NotFound().json(json!({"errors": format!(
            "There is no payment/{kind} endpoint: purchase, preauth, verify, capture, refund, reverse or withdraw"
        )}));
    };
    partner_gate(&req, &state, endpoint, Keys::Required, &body, |call| {
        make(&state, call, &body).unwrap_or_else(|refused| refused)
    })
    .await
}

fn endpoint(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "purchase" => "payment/purchase",
        "preauth" => "payment/preauth",
        "verify" => "payment/verify",
        "capture" => "payment/capture",
        "refund" => "payment/refund",
        "reverse" => "payment/reverse",
        "withdraw" => "payment/withdraw",
        _ => return None,
    })
}

/// What the request asks for, checked against the ledger.
struct Plan {
    new: NewTransaction,
    /// Why it is declined, if it is.
    decline: Option<&'static str>,
}

fn make(state: &SimState, call: &Call, bytes: &[u8]) -> Result<Answer, Answer> {
    let mut body = Body::parse(bytes)?;
    let mut ledger = state.ledger_mut();
    let plan = match call.endpoint {
        "payment/purchase" => sale(&ledger, call, &mut body, Kind::Purchase, state.seed),
        "payment/preauth" => sale(&ledger, call, &mut body, Kind::Preauth, state.seed),
        "payment/verify" => sale(&ledger, call, &mut body, Kind::Verify, state.seed),
        "payment/withdraw" => sale(&ledger, call, &mut body, Kind::Refund, state.seed),
        "payment/capture" => capture(&ledger, call, &mut body),
        "payment/refund" => refund(&ledger, call, &mut body),
        _ => reverse(&ledger, call, &mut body),
    };
    body.finish()?;
    let Some(plan) = plan else {
        return Err(Answer::json(
            400,
            &json!({"errors": "The request was not accepted"}),
        ));
    };
    let tx = ledger
        .record(plan.new)
        .map_err(|reason| Answer::json(400, &json!({"errors": reason})))?
        .clone();
    let event = SimState::card_transaction_event(&ledger, &tx);
    drop(ledger);
    state.announce(event);
    Ok(match plan.decline {
        Some(message) => Answer::json(500, &json!({"errors": message})),
        None => Answer::json(200, &render::transaction(&tx, state.seed)),
    })
}

/// The fields every new transaction shares.
fn new_transaction(
    call: &Call,
    body: &Body,
    kind: Kind,
    amount_minor: i64,
    currency: &'static str,
    card: CardOnFile,
    declined: bool,
) -> NewTransaction {
    NewTransaction {
        account_id: call.account.clone(),
        kind,
        status: if declined {
            Status::Declined
        } else {
            Status::Approved
        },
        amount_minor,
        currency,
        terminal_id: None,
        original_transaction_id: None,
        card,
        customer_code: body.text("customerCode").unwrap_or_default(),
        invoice_number: body.text("invoiceNumber").unwrap_or_default(),
        user: "API",
        made_by: Some(call.made_by()),
    }
}

/// Purchase, preauth, verify, and withdraw (a refund with no original).
fn sale(ledger: &Ledger, call: &Call, body: &mut Body, kind: Kind, seed: u64) -> Option<Plan> {
    let withdraw = call.endpoint == "payment/withdraw";
    if !withdraw {
        body.require_text("ipAddress");
    }
    let currency = body.currency("currency");
    // A verify checks a card and moves no money: its amount, if sent, only feeds the
    // decline rule.
    let amount = body.amount("amount", kind != Kind::Verify);
    let card = body.card(&call.account, seed);
    if let Some(currency) = currency
        && ledger.terminal_for(&call.account, currency).is_none()
    {
        body.refuse(
            "currency",
            format!("This account has no {currency} terminal"),
        );
    }
    let card_decline = card.as_ref().and_then(CardInput::decline);
    let card = match card? {
        CardInput::Number { card, .. } => card,
        CardInput::Token(token) => match known_card(ledger, &call.account, &token) {
            Some(card) => card,
            None => {
                body.refuse("cardData.cardToken", "Card token not found on this account");
                return None;
            }
        },
    };
    let (currency, amount) = (currency?, amount.or((kind == Kind::Verify).then_some(0))?);
    if body.has_errors() {
        return None;
    }
    let decline = card_decline.or_else(|| decline_for_amount(amount));
    let recorded = if kind == Kind::Verify { 0 } else { amount };
    Some(Plan {
        new: new_transaction(
            call,
            body,
            kind,
            recorded,
            currency,
            card,
            decline.is_some(),
        ),
        decline,
    })
}

fn capture(ledger: &Ledger, call: &Call, body: &mut Body) -> Option<Plan> {
    let id = body.id("preAuthTransactionId")?;
    let amount = body.amount("amount", false);
    let Some(pre) = ledger.transaction_of(&call.account, id) else {
        body.refuse(
            "preAuthTransactionId",
            "Transaction not found on this account",
        );
        return None;
    };
    if pre.kind != Kind::Preauth || pre.status != Status::Approved {
        body.refuse(
            "preAuthTransactionId",
            "Only an approved preauth can be captured",
        );
        return None;
    }
    if follow_ups(ledger, pre).any(|t| t.kind == Kind::Capture || t.kind == Kind::Reverse) {
        body.refuse(
            "preAuthTransactionId",
            "This preauth was already captured or reversed",
        );
        return None;
    }
    let amount = amount.unwrap_or(pre.amount_minor);
    if amount > pre.amount_minor {
        body.refuse("amount", "A capture cannot exceed its preauth");
        return None;
    }
    Some(follow_up(
        call,
        body,
        pre,
        Kind::Capture,
        amount,
        decline_for_amount(amount),
    ))
}

fn refund(ledger: &Ledger, call: &Call, body: &mut Body) -> Option<Plan> {
    let id = body.id("originalTransactionId");
    let amount = body.amount("amount", true);
    let (id, amount) = (id?, amount?);
    let Some(original) = ledger.transaction_of(&call.account, id) else {
        body.refuse(
            "originalTransactionId",
            "Transaction not found on this account",
        );
        return None;
    };
    if !matches!(original.kind, Kind::Purchase | Kind::Capture)
        || original.status != Status::Approved
    {
        body.refuse(
            "originalTransactionId",
            "Only an approved purchase or capture can be refunded",
        );
        return None;
    }
    let mut left = original.amount_minor;
    for tx in follow_ups(ledger, original) {
        match tx.kind {
            Kind::Reverse => left = 0,
            Kind::Refund => left -= tx.amount_minor,
            _ => {}
        }
    }
    if amount > left {
        body.refuse(
            "amount",
            format!(
                "Only {} is left to refund on this transaction",
                recon_money::format_minor_units(left.max(0), 2)
            ),
        );
        return None;
    }
    Some(follow_up(
        call,
        body,
        original,
        Kind::Refund,
        amount,
        decline_for_amount(amount),
    ))
}

fn reverse(ledger: &Ledger, call: &Call, body: &mut Body) -> Option<Plan> {
    let id = body.id("cardTransactionId")?;
    let Some(original) = ledger.transaction_of(&call.account, id) else {
        body.refuse("cardTransactionId", "Transaction not found on this account");
        return None;
    };
    if original.status != Status::Approved || matches!(original.kind, Kind::Reverse | Kind::Verify)
    {
        body.refuse(
            "cardTransactionId",
            "Only an approved purchase, preauth, capture or refund can be reversed",
        );
        return None;
    }
    if follow_ups(ledger, original).next().is_some() {
        body.refuse(
            "cardTransactionId",
            "This transaction was already captured, refunded or reversed",
        );
        return None;
    }
    if ledger
        .activity
        .batch(original.card_batch_id)
        .is_some_and(|b| b.closed_at.is_some())
    {
        body.refuse(
            "cardTransactionId",
            "Its batch is closed: refund it instead",
        );
        return None;
    }
    let amount = original.amount_minor;
    Some(follow_up(call, body, original, Kind::Reverse, amount, None))
}

/// Approved transactions that act on `original`.
fn follow_ups<'a>(
    ledger: &'a Ledger,
    original: &'a Transaction,
) -> impl Iterator<Item = &'a Transaction> + 'a {
    ledger
        .transactions_of(&original.account_id)
        .filter(move |t| {
            t.original_transaction_id == Some(original.transaction_id)
                && t.status == Status::Approved
        })
}

fn follow_up(
    call: &Call,
    body: &Body,
    original: &Transaction,
    kind: Kind,
    amount: i64,
    decline: Option<&'static str>,
) -> Plan {
    let card = CardOnFile {
        card_type: original.card_type,
        masked: original.card_number.clone(),
        token: original.card_token.clone(),
        holder: original.card_holder_name.clone(),
    };
    let mut new = new_transaction(
        call,
        body,
        kind,
        amount,
        original.currency,
        card,
        decline.is_some(),
    );
    new.terminal_id = Some(original.terminal_id.clone());
    new.original_transaction_id = Some(original.transaction_id);
    if new.customer_code.is_empty() {
        new.customer_code = original.customer_code.clone();
    }
    if new.invoice_number.is_empty() {
        new.invoice_number = original.invoice_number.clone();
    }
    Plan { new, decline }
}

/// The card behind a token the account has seen.
fn known_card(ledger: &Ledger, account_id: &str, token: &str) -> Option<CardOnFile> {
    ledger
        .transactions_of(account_id)
        .find(|t| t.card_token == token)
        .map(|t| CardOnFile {
            card_type: t.card_type,
            masked: t.card_number.clone(),
            token: t.card_token.clone(),
            holder: t.card_holder_name.clone(),
        })
}
