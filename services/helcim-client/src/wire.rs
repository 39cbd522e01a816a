//! Helcim's JSON as it arrives: every scalar may be a string, a number or missing.
//! These structs only accept the shapes; [`crate::model`] turns them into checked
//! domain values.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A JSON scalar read as text: `"25764674"`, `25764674` and `100.9900` all keep their
/// exact written form (the workspace enables `serde_json/arbitrary_precision`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(text) => Ok(Scalar(text)),
            Value::Number(number) => Ok(Scalar(number.to_string())),
            Value::Bool(flag) => Ok(Scalar(flag.to_string())),
            Value::Null => Ok(Scalar(String::new())),
            Value::Array(_) => Err(serde::de::Error::custom("expected a scalar, found a list")),
            Value::Object(_) => Err(serde::de::Error::custom(
                "expected a scalar, found an object",
            )),
        }
    }
}

impl Scalar {
    /// The text, or `None` when it is empty or only spaces (Helcim's "no value").
    pub(crate) fn non_empty(&self) -> Option<&str> {
        let text = self.0.trim();
        (!text.is_empty()).then_some(text)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireTransaction {
    pub transaction_id: Scalar,
    pub date_created: Scalar,
    #[serde(default)]
    pub card_batch_id: Option<Scalar>,
    pub status: Scalar,
    #[serde(rename = "type")]
    pub kind: Scalar,
    pub amount: Scalar,
    pub currency: Scalar,
    #[serde(default)]
    pub user: Option<Scalar>,
    #[serde(default)]
    pub avs_response: Option<Scalar>,
    #[serde(default)]
    pub cvv_response: Option<Scalar>,
    #[serde(default)]
    pub card_type: Option<Scalar>,
    #[serde(default)]
    pub approval_code: Option<Scalar>,
    #[serde(default)]
    pub card_token: Option<Scalar>,
    #[serde(default)]
    pub card_number: Option<Scalar>,
    #[serde(default)]
    pub card_holder_name: Option<Scalar>,
    #[serde(default)]
    pub customer_code: Option<Scalar>,
    #[serde(default)]
    pub invoice_number: Option<Scalar>,
    #[serde(default)]
    pub warning: Option<Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireBatch {
    pub id: Scalar,
    #[serde(default)]
    pub date_created: Option<Scalar>,
    #[serde(default)]
    pub date_updated: Option<Scalar>,
    #[serde(default)]
    pub date_closed: Option<Scalar>,
    #[serde(default)]
    pub closed: Option<Scalar>,
    #[serde(default)]
    pub terminal_id: Option<Scalar>,
    #[serde(default)]
    pub batch_number: Option<Scalar>,
    #[serde(default)]
    pub net_sales: Option<Scalar>,
    #[serde(default)]
    pub total_sales: Option<Scalar>,
    #[serde(default)]
    pub total_refunds: Option<Scalar>,
    #[serde(default)]
    pub total_reversed: Option<Scalar>,
    #[serde(default)]
    pub total_refunds_reversed: Option<Scalar>,
    #[serde(default)]
    pub count_total: Option<Scalar>,
    #[serde(default)]
    pub count_approved: Option<Scalar>,
    #[serde(default)]
    pub count_declined: Option<Scalar>,
}

/// Optional text field: `None` for missing, null or blank.
pub(crate) fn text(field: &Option<Scalar>) -> Option<String> {
    field
        .as_ref()
        .and_then(Scalar::non_empty)
        .map(str::to_string)
}
