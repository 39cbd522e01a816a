//! The receiver over HTTP against the real RabbitMQ, with its own queue names per test.

mod accounts_from_database;
mod broker_outage;
mod helpers;
mod keys_and_ports;
mod receiving;
mod rejections;
