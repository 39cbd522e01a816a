//! Which requests make (or start) a payment, and so leave attribution evidence: the
//! Payment API's calls, HelcimPay.js initialize, Smart Terminal purchase and refund,
//! and the Recurring API's create calls. Everything else is forwarded without any.
//!
//! The names are the `endpoint` values of `attribution_evidence` (migration 0008) and
//! the `endpoint` label of the metrics, so they never carry a caller-chosen part (a
//! device code, an id) and the label set stays small.

use percent_encoding::percent_decode_str;

/// The Payment API's calls that make or move money (`POST /v2/payment/<kind>`).
const PAYMENT_KINDS: [&str; 7] = [
    "purchase", "preauth", "capture", "verify", "refund", "reverse", "withdraw",
];

/// The metrics label of every request that is not a payment.
pub const OTHER: &str = "other";

/// The evidence name of a request, when it is a payment-making one. `path` is what
/// follows `/v2` (`/payment/purchase`), as received (percent-encoded segments are
/// decoded first, as Helcim would decode them).
pub fn classify(method: &str, path: &str) -> Option<&'static str> {
    if !method.eq_ignore_ascii_case("POST") {
        return None;
    }
    let path = path.strip_prefix('/').unwrap_or(path);
    let path = path.strip_suffix('/').unwrap_or(path);
    let segments: Vec<std::borrow::Cow<'_, str>> = path
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8_lossy())
        .collect();
    let segments: Vec<&str> = segments.iter().map(|s| s.as_ref()).collect();
    match segments.as_slice() {
        ["payment", kind] => PAYMENT_KINDS
            .iter()
            .find(|k| *k == kind)
            .map(|k| payment_name(k)),
        ["helcim-pay", "initialize"] => Some("helcim-pay/initialize"),
        ["devices", code, "payment", "purchase"] if !code.is_empty() => {
            Some("devices/payment/purchase")
        }
        ["devices", code, "payment", "refund"] if !code.is_empty() => {
            Some("devices/payment/refund")
        }
        ["payment-plans"] => Some("payment-plans"),
        ["subscriptions"] => Some("subscriptions"),
        ["add-ons"] => Some("add-ons"),
        _ => None,
    }
}

fn payment_name(kind: &str) -> &'static str {
    match kind {
        "purchase" => "payment/purchase",
        "preauth" => "payment/preauth",
        "capture" => "payment/capture",
        "verify" => "payment/verify",
        "refund" => "payment/refund",
        "reverse" => "payment/reverse",
        _ => "payment/withdraw",
    }
}

/// Whether the request's amount is `transactionAmount` (Smart Terminal) rather than
/// `amount` (everything else).
pub fn amount_field(endpoint: &str) -> &'static str {
    if endpoint.starts_with("devices/") {
        "transactionAmount"
    } else {
        "amount"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_payment_api_call_is_a_payment_under_its_own_name() {
        for kind in PAYMENT_KINDS {
            assert_eq!(
                classify("POST", &format!("/payment/{kind}")).map(str::to_string),
                Some(format!("payment/{kind}"))
            );
        }
    }

    #[test]
    fn helcim_pay_terminals_and_recurring_creates_are_payments() {
        assert_eq!(
            classify("POST", "/helcim-pay/initialize"),
            Some("helcim-pay/initialize")
        );
        assert_eq!(
            classify("POST", "/devices/NBL7/payment/purchase"),
            Some("devices/payment/purchase")
        );
        assert_eq!(
            classify("post", "/devices/X1/payment/refund"),
            Some("devices/payment/refund")
        );
        for name in ["payment-plans", "subscriptions", "add-ons"] {
            assert_eq!(classify("POST", &format!("/{name}")), Some(name));
        }
    }

    #[test]
    fn reads_other_methods_and_unknown_paths_are_not_payments() {
        assert_eq!(classify("GET", "/payment/purchase"), None);
        assert_eq!(classify("PUT", "/payment-plans"), None);
        assert_eq!(classify("POST", "/payment/settle"), None);
        assert_eq!(classify("POST", "/card-batches/12/settle"), None);
        assert_eq!(classify("POST", "/devices//payment/purchase"), None);
        assert_eq!(classify("POST", "/payment-plans/42"), None);
        assert_eq!(classify("GET", "/card-transactions"), None);
        assert_eq!(classify("POST", "/payment/purchasex"), None);
    }

    #[test]
    fn a_trailing_slash_or_percent_encoding_does_not_hide_a_payment() {
        assert_eq!(
            classify("POST", "/payment/purchase/"),
            Some("payment/purchase")
        );
        assert_eq!(
            classify("POST", "/payment/%70urchase"),
            Some("payment/purchase")
        );
    }

    #[test]
    fn terminals_carry_their_amount_as_transaction_amount() {
        assert_eq!(
            amount_field("devices/payment/purchase"),
            "transactionAmount"
        );
        assert_eq!(amount_field("payment/purchase"), "amount");
    }
}
