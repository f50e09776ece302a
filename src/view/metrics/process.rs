//! The exporter itself: its build, and resources read at scrape time.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::{counter_f64, gauge, gauges};
use crate::families::{self, Family, Kind};

/// Figures about the process itself, read at scrape time.
pub trait ProcessInfo: Send + Sync + std::fmt::Debug + 'static {
    /// Each figure with the family it belongs to (unlabelled counters and gauges).
    fn sample(&self) -> Vec<(&'static Family, f64)>;
}

pub fn encode(process: Option<&dyn ProcessInfo>, enc: &mut DescriptorEncoder) -> fmt::Result {
    gauges(
        enc,
        &families::BUILD_INFO,
        [(
            vec![
                ("version", env!("CARGO_PKG_VERSION")),
                ("revision", env!("JANSX_BUILD_REVISION")),
                ("rustc", env!("JANSX_BUILD_RUSTC")),
            ],
            1.0,
        )],
    )?;
    for (family, value) in process.map(|p| p.sample()).unwrap_or_default() {
        match family.kind {
            Kind::Counter => counter_f64(enc, family, value)?,
            _ => gauge(enc, family, value)?,
        }
    }
    Ok(())
}
