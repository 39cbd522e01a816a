//! Webhooks as Helcim sends them: Standard Webhooks v1 signatures, one event per
//! transaction or terminal cancel, retried with backoff on any non-2xx answer.

pub mod deliver;
pub mod plan;
pub mod sign;

pub use deliver::{DeliveryLog, DeliverySummary, WebhookConfig};
pub use plan::{Plan, PlannedDelivery};
