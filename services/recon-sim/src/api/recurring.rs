//! Recurring API create calls: `POST /v2/payment-plans`, `/v2/subscriptions`,
//! `/v2/add-ons`. Each takes a list under its plural name (`{"paymentPlans": [...]}`,
//! `{"subscriptions": [...]}`, `{"addOns": [...]}`; a bare object or array is taken
//! too), and answers `{"data": [...]}` with each created object and its `id`. Errors
//! take the Recurring API's shape, `{"status":"error","errors":[{"code","message",
//! "source","data"}]}`. They bill nothing, so they make no card transaction; the
//! truth lists what they made and the partner-token answer of each request.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};

use super::gate::{Answer, Call, Keys, partner_gate};
use crate::ledger::{RecurringKind, RecurringObject};
use crate::state::SimState;

pub(super) async fn payment_plans(
    req: HttpRequest,
    state: web::Data<SimState>,
    body: web::Bytes,
) -> HttpResponse {
    create(req, state, body, RecurringKind::PaymentPlan).await
}

pub(super) async fn subscriptions(
    req: HttpRequest,
    state: web::Data<SimState>,
    body: web::Bytes,
) -> HttpResponse {
    create(req, state, body, RecurringKind::Subscription).await
}

pub(super) async fn add_ons(
    req: HttpRequest,
    state: web::Data<SimState>,
    body: web::Bytes,
) -> HttpResponse {
    create(req, state, body, RecurringKind::AddOn).await
}

async fn create(
    req: HttpRequest,
    state: web::Data<SimState>,
    body: web::Bytes,
    kind: RecurringKind,
) -> HttpResponse {
    let endpoint = match kind {
        RecurringKind::PaymentPlan => "payment-plans",
        RecurringKind::Subscription => "subscriptions",
        RecurringKind::AddOn => "add-ons",
    };
    partner_gate(&req, &state, endpoint, Keys::Optional, &body, |call| {
        make(&state, call, &body, kind)
    })
    .await
}

/// The list key and the fields each item needs.
fn shape(kind: RecurringKind) -> (&'static str, &'static [&'static str]) {
    match kind {
        RecurringKind::PaymentPlan => ("paymentPlans", &["name", "recurringAmount"]),
        RecurringKind::Subscription => ("subscriptions", &["paymentPlanId", "customerCode"]),
        RecurringKind::AddOn => ("addOns", &["name", "amount"]),
    }
}

fn error(code: &str, message: String, source: String) -> Value {
    json!({"code": code, "message": message, "source": source, "data": null})
}

fn make(state: &SimState, call: &Call, bytes: &[u8], kind: RecurringKind) -> Answer {
    let (list_key, required) = shape(kind);
    let items: Vec<Value> = match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(mut fields)) if fields.contains_key(list_key) => {
            match fields.remove(list_key) {
                Some(Value::Array(items)) => items,
                Some(one) => vec![one],
                None => Vec::new(),
            }
        }
        Ok(Value::Array(items)) => items,
        Ok(one @ Value::Object(_)) => vec![one],
        Ok(_) | Err(_) => {
            return refused(vec![error(
                "INVALID_BODY",
                format!("The body must be JSON: {{\"{list_key}\": [ ... ]}}"),
                "body".into(),
            )]);
        }
    };
    let mut ledger = state.ledger_mut();
    let mut errors = Vec::new();
    if items.is_empty() {
        errors.push(error(
            "REQUIRED",
            format!("{list_key} needs at least one item"),
            list_key.into(),
        ));
    }
    for (index, item) in items.iter().enumerate() {
        let Some(fields) = item.as_object() else {
            errors.push(error(
                "INVALID",
                "each item must be an object".into(),
                format!("{list_key}[{index}]"),
            ));
            continue;
        };
        for field in required {
            if fields
                .get(*field)
                .is_none_or(|v| v.is_null() || v.as_str() == Some(""))
            {
                errors.push(error(
                    "REQUIRED",
                    format!("{field} is required"),
                    format!("{list_key}[{index}].{field}"),
                ));
            }
        }
        if kind == RecurringKind::Subscription
            && let Some(plan) = fields.get("paymentPlanId").and_then(number)
            && !ledger.recurring.has_plan(&call.account, plan)
        {
            errors.push(error(
                "NOT_FOUND",
                format!("payment plan {plan} does not exist on this account"),
                format!("{list_key}[{index}].paymentPlanId"),
            ));
        }
    }
    if !errors.is_empty() {
        return refused(errors);
    }
    let mut data = Vec::new();
    for item in items {
        let mut fields: Map<String, Value> = item.as_object().cloned().unwrap_or_default();
        let id = ledger.recurring.next_id();
        fields.insert("id".into(), json!(id));
        if kind == RecurringKind::Subscription {
            fields.entry("status").or_insert(json!("active"));
        }
        let created = Value::Object(fields);
        ledger.recurring.objects.push(RecurringObject {
            account_id: call.account.clone(),
            kind,
            id,
            data: created.clone(),
            is_valid_partner_token: call.partner.header,
            partner_token_sent: call.partner.sent,
        });
        data.push(created);
    }
    Answer::json(200, &json!({"data": data}))
}

fn refused(errors: Vec<Value>) -> Answer {
    Answer::json(400, &json!({"status": "error", "errors": errors}))
}

fn number(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}
