//! HTTP endpoints: the webhook itself, and health, readiness and metrics.

pub mod health;
pub mod webhook;
