//! HelcimPay.js: `POST /v2/helcim-pay/initialize` from the merchant's back end opens a
//! checkout and answers `{"checkoutToken", "secretToken"}`. The shopper's browser then
//! pays Helcim directly, which the simulator plays with
//! `POST /sim/helcim-pay/{checkoutToken}/complete`: no request of the partner's ever
//! carries that transaction's id.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::gate::{Answer, Call, Keys, partner_gate};
use super::payment_request::Body;
use crate::activity::Kind;
use crate::ledger::{Checkout, now};
use crate::state::SimState;

pub(super) async fn initialize(
    req: HttpRequest,
    state: web::Data<SimState>,
    body: web::Bytes,
) -> HttpResponse {
    partner_gate(
        &req,
        &state,
        "helcim-pay/initialize",
        Keys::Optional,
        &body,
        |call| open(&state, call, &body).unwrap_or_else(|refused| refused),
    )
    .await
}

fn open(state: &SimState, call: &Call, bytes: &[u8]) -> Result<Answer, Answer> {
    let mut body = Body::parse(bytes)?;
    let kind = match body.require_text("paymentType").as_deref() {
        Some("purchase") => Some(Kind::Purchase),
        Some("preauth") => Some(Kind::Preauth),
        Some("verify") => Some(Kind::Verify),
        Some(other) => {
            body.refuse(
                "paymentType",
                format!("{other:?} is not purchase, preauth or verify"),
            );
            None
        }
        None => None,
    };
    let currency = body.currency("currency");
    let amount = body.amount("amount", kind != Some(Kind::Verify));
    let mut ledger = state.ledger_mut();
    if let Some(currency) = currency
        && ledger.terminal_for(&call.account, currency).is_none()
    {
        body.refuse(
            "currency",
            format!("This account has no {currency} terminal"),
        );
    }
    let invoice_number = body.text("invoiceNumber");
    let customer_code = body.text("customerCode").unwrap_or_default();
    body.finish()?;
    let (Some(kind), Some(currency)) = (kind, currency) else {
        return Err(Answer::json(
            400,
            &json!({"errors": "The request was not accepted"}),
        ));
    };
    let invoice_number = invoice_number.unwrap_or_else(|| ledger.fresh_invoice_number());
    let checkout_token = ledger.code(30).to_lowercase();
    let secret_token = ledger.code(30).to_lowercase();
    ledger.checkouts.push(Checkout {
        account_id: call.account.clone(),
        checkout_token: checkout_token.clone(),
        secret_token: secret_token.clone(),
        payment_type: kind,
        amount_minor: if kind == Kind::Verify {
            0
        } else {
            amount.unwrap_or(0)
        },
        currency,
        invoice_number,
        customer_code,
        created_at: now(),
        made_by: call.made_by(),
        transaction_id: None,
    });
    Ok(Answer::json(
        200,
        &json!({"checkoutToken": checkout_token, "secretToken": secret_token}),
    ))
}
