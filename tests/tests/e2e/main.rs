//! End-to-end tests: they start the real binaries from `target/<profile>/` (built by
//! `make test` before the tests run) and talk to them over HTTP.

mod access_and_dead_letters;
mod attribution;
mod attribution_month;
mod attribution_requests;
mod attribution_stack;
mod attribution_watch;
mod binaries;
mod connected;
mod faults;
mod gateway;
mod gateway_edges;
mod gateway_faults;
mod gateway_stack;
mod ledger;
mod pipeline;
mod reconciliation;
mod secrets;
mod sim;
mod sim_binary;
mod stack;
mod unreadable;
mod webhook_sink;
