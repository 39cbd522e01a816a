//! Webhooks as Helcim sends them: Standard Webhooks v1 signatures, one event per
//! transaction or terminal cancel, retried with backoff on any non-2xx answer. The
//! generated activity is sent as a [`plan`]; what happens at run time [`live`].

pub mod deliver;
pub mod live;
pub mod plan;
pub mod sign;

pub use deliver::{DeliveryLog, DeliverySummary, WebhookConfig};
pub use live::{LiveEvent, LiveWebhooks};
pub use plan::{Plan, PlannedDelivery};
