//! `recon-gateway`: a transparent proxy a partner's integration points at instead of
//! Helcim (`http://<gateway>/v2/...` for `https://api.helcim.com/v2/...`). It adds the
//! `partner-token` when a request has none and records, for every payment-making
//! request, Helcim's `is-valid-partner-token` answer as attribution evidence, without
//! ever holding up or failing the payment for it.
//!
//! Pure decisions: [`endpoint`] (which requests are payments), [`extract`] (the fields
//! kept), [`headers`] (what crosses), [`record`] (one piece of evidence). I/O:
//! [`proxy`], [`accounts`], [`spool`], [`writer`].

pub mod accounts;
pub mod config;
pub mod endpoint;
pub mod extract;
pub mod headers;
pub mod metrics;
pub mod ops;
pub mod proxy;
pub mod record;
pub mod rejected;
pub mod spool;
pub mod startup;
pub mod writer;
