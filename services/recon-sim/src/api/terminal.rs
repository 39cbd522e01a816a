//! Smart Terminal payments: `POST /v2/devices/{code}/payment/{purchase,refund}` puts
//! the request on the device's screen and answers 202 with an empty body; the result
//! comes only by webhook, once the customer is done: after the configured delay the
//! default outcome happens (approved, or declined when the amount ends in `.05`), or
//! at once by `POST /sim/devices/{code}/complete`. An unknown or offline device, or
//! one with a request already on screen, answers 409 "Device Not Listening".

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::gate::{Answer, Call, Keys, partner_gate};
use super::payment_request::Body;
use crate::activity::Kind;
use crate::ledger::{PendingTerminalPayment, now};
use crate::outcomes;
use crate::state::SimState;

pub(super) async fn payment(
    req: HttpRequest,
    state: web::Data<SimState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (code, kind) = path.into_inner();
    let (endpoint, kind) = match kind.as_str() {
        "purchase" => ("devices/payment/purchase", Kind::Purchase),
        "refund" => ("devices/payment/refund", Kind::Refund),
        _ => {
            return HttpResponse::NotFound().json(
                json!({"errors": "A Smart Terminal takes payment/purchase or payment/refund"}),
            );
        }
    };
    let mut scheduled = None;
    let response = partner_gate(
        &req,
        &state,
        endpoint,
        Keys::Optional,
        &body,
        |call| match send(&state, call, &code, kind, &body) {
            Ok((answer, serial)) => {
                scheduled = Some(serial);
                answer
            }
            Err(refused) => refused,
        },
    )
    .await;
    if let (Some(serial), Some(delay)) = (scheduled, state.payments.terminal_delay) {
        let state: Arc<SimState> = state.into_inner();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            // Too late if a control call ended it first: nothing to do then.
            let _ = outcomes::complete_device(&state, &code, Some(serial), None);
        });
    }
    response
}

fn send(
    state: &SimState,
    call: &Call,
    code: &str,
    kind: Kind,
    bytes: &[u8],
) -> Result<(Answer, u64), Answer> {
    let mut body = Body::parse(bytes)?;
    let currency = body.currency("currency");
    let amount = body.amount("transactionAmount", true);
    let invoice_number = body.text("invoiceNumber");
    let customer_code = body.text("customerCode").unwrap_or_default();
    let mut ledger = state.ledger_mut();
    let device_currency = ledger
        .devices
        .iter()
        .find(|d| d.account_id == call.account && d.code == code)
        .map(|d| d.currency);
    if let (Some(currency), Some(device)) = (currency, device_currency)
        && currency != device
    {
        body.refuse("currency", format!("This device takes {device} only"));
    }
    body.finish()?;
    let (Some(currency), Some(amount_minor)) = (currency, amount) else {
        return Err(Answer::json(
            400,
            &json!({"errors": "The request was not accepted"}),
        ));
    };
    let invoice_number = invoice_number.unwrap_or_else(|| ledger.fresh_invoice_number());
    let serial = ledger.next_serial();
    let Some(device) = ledger.devices.iter_mut().find(|d| {
        d.account_id == call.account && d.code == code && d.listening && d.pending.is_none()
    }) else {
        return Err(Answer::json(
            409,
            &json!({"errors": "Device Not Listening"}),
        ));
    };
    device.pending = Some(PendingTerminalPayment {
        serial,
        kind,
        amount_minor,
        currency,
        invoice_number,
        customer_code,
        requested_at: now(),
        made_by: call.made_by(),
    });
    Ok((Answer::raw(202, Vec::new(), None), serial))
}
