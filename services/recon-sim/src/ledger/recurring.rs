//! Recurring API objects created at run time: payment plans, subscriptions, add-ons.
//! They make no card transaction (the simulator bills nothing); they exist so a
//! partner's create calls get real answers and the truth shows which request made them.

use serde::Serialize;
use serde_json::Value;

/// What a Recurring API create call made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RecurringKind {
    PaymentPlan,
    Subscription,
    AddOn,
}

/// One created object, as answered, and the partner-token answer of its request.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecurringObject {
    pub account_id: String,
    pub kind: RecurringKind,
    pub id: u64,
    pub data: Value,
    pub is_valid_partner_token: Option<u8>,
    pub partner_token_sent: bool,
}

#[derive(Debug, Default)]
pub struct Recurring {
    pub objects: Vec<RecurringObject>,
    next_id: u64,
}

impl Recurring {
    /// A fresh id for a new object of any kind.
    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        40_000 + self.next_id
    }

    /// Whether the account has a payment plan with this id.
    pub fn has_plan(&self, account_id: &str, id: u64) -> bool {
        self.objects.iter().any(|o| {
            o.account_id == account_id && o.kind == RecurringKind::PaymentPlan && o.id == id
        })
    }
}
