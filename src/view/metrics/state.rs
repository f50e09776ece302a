//! The durable snapshot: loads, dropped sections, saves and size.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::{counter, counters, gauge};
use crate::families;
use crate::store::{View, STATE_SECTIONS};

pub fn encode(v: &View, enc: &mut DescriptorEncoder) -> fmt::Result {
    let c = &v.counters;
    counter(enc, &families::STATE_LOAD_FAILURES, c.state_load_failures)?;
    counters(
        enc,
        &families::STATE_SECTIONS_DROPPED,
        STATE_SECTIONS
            .iter()
            .zip(c.state_sections_dropped)
            .map(|(s, n)| (vec![("section", *s)], n)),
    )?;
    counter(enc, &families::STATE_SAVE_FAILURES, c.state_save_failures)?;
    gauge(enc, &families::STATE_SIZE, v.state.bytes as f64)?;
    if let Some(ms) = v.state.last_save_ms {
        gauge(enc, &families::STATE_LAST_SAVE, ms as f64 / 1000.0)?;
    }
    Ok(())
}
