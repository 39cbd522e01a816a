//! Helcim's v2 endpoints as the simulator serves them. Every request passes the same
//! [`gate`] as at Helcim (`api-token` authentication, the account's rate limits with
//! the remaining budget in headers, then any faults switched on); the payment-making
//! endpoints of the partner program also answer `is-valid-partner-token` and keep the
//! idempotency rules.

mod filters;
mod gate;
mod helcim_pay;
pub mod idempotency;
mod payment_request;
mod payments;
mod reads;
mod recurring;
mod terminal;

use actix_web::web;

pub use gate::Answer;
pub(crate) use payment_request::card_on_file;
pub use payment_request::{DECLINE_CENTS, decline_for_amount};

/// Mounts `/v2/...`.
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(
        web::scope("/v2")
            .route("/connection-test", web::get().to(reads::connection_test))
            .route(
                "/card-transactions",
                web::get().to(reads::list_transactions),
            )
            .route(
                "/card-transactions/{id}",
                web::get().to(reads::get_transaction),
            )
            .route("/card-batches", web::get().to(reads::list_batches))
            .route("/card-batches/{id}", web::get().to(reads::get_batch))
            .route("/devices", web::get().to(reads::list_devices))
            .route(
                "/devices/{code}/payment/{kind}",
                web::post().to(terminal::payment),
            )
            .route("/payment/{kind}", web::post().to(payments::payment))
            .route(
                "/helcim-pay/initialize",
                web::post().to(helcim_pay::initialize),
            )
            .route("/payment-plans", web::post().to(recurring::payment_plans))
            .route("/subscriptions", web::post().to(recurring::subscriptions))
            .route("/add-ons", web::post().to(recurring::add_ons)),
    );
}
