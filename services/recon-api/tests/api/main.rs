//! recon-api over real HTTP on 127.0.0.1:0 against a fresh, migrated Postgres database
//! per test: roles, key lifecycle, failed-attempt limits, and the operations endpoints.

mod harness;
mod key_lifecycle;
mod limits;
mod operations;
mod roles;
