//! jans-exporter: a Prometheus exporter sidecar for the Janssen auth server.
//!
//! Data flows one way: [`source`]s turn logs (and upstream APIs) into typed
//! [`event::Event`]s; the [`store`] applies them to counters and sketches and owns
//! persistence; [`view`]s read immutable snapshots of the store.

pub mod app;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod event;
pub mod families;
pub mod generate;
pub mod healthcheck;
pub mod log_limit;
pub mod okta;
pub mod process;
pub mod source;
pub mod store;
pub mod upstream;
pub mod view;
