//! The simulator's payment-making side over real HTTP: the Payment API, idempotency
//! keys, partner tokens, HelcimPay.js, Smart Terminals, the Recurring API, and the
//! control calls, with webhooks caught by a small receiver.

mod checkout_and_terminal;
mod clock_traffic_injections;
mod control_calls;
mod harness;
mod idempotency;
mod partner_tokens;
mod payment_api;
mod recurring;
