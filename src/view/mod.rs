//! Views: read the store's published [`crate::store::View`]; never write to it.

pub mod auth;
pub mod basic_auth;
pub mod connections;
pub mod http;
pub mod janssen_stat;
pub mod metrics;
pub mod web_config;
