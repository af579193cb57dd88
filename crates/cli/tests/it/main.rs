//! End-to-end tests: the real `inferbench` binary against the real simulator, and the real engine on a tiny
//! random model, on 127.0.0.1.
//! One test binary (modules below) keeps linking cheap.

mod api;
mod bad_input;
mod cdp;
mod compare;
mod dashboard;
mod datasets;
mod docs;
mod engine;
mod explore;
mod faults;
mod hardening;
mod harness;
mod html;
mod import;
mod interrupt;
mod library;
mod monitor;
mod serving;
mod shards;
mod store;
mod sweep;
mod timeouts;
mod tls;
mod trace;
