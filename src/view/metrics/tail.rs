//! The log files followed: bytes read, rotations, truncations, losses and lag.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::{counter, gauge, gauges};
use crate::families;
use crate::store::View;

pub fn encode(v: &View, enc: &mut DescriptorEncoder) -> fmt::Result {
    let c = &v.counters;
    counter(enc, &families::LOG_READ, c.bytes_read)?;
    counter(enc, &families::LOG_ROTATIONS, c.rotations)?;
    counter(enc, &families::LOG_TRUNCATIONS, c.truncations)?;
    counter(enc, &families::LOG_FILES_LOST, c.files_lost)?;
    gauge(enc, &families::LOG_FILES, v.tail.files as f64)?;
    gauge(enc, &families::LOG_LAG, v.tail.lag_bytes as f64)?;
    gauge(
        enc,
        &families::LOG_FILES_UNREADABLE,
        v.tail.unreadable as f64,
    )?;
    gauge(
        enc,
        &families::LOG_FILES_OVER_LIMIT,
        v.tail.over_limit as f64,
    )?;
    // Label values are the operator's own `logs.paths`, never input.
    gauges(
        enc,
        &families::LOG_PATTERN_FILES,
        v.tail
            .matched
            .iter()
            .map(|(pattern, n)| (vec![("pattern", &**pattern)], *n as f64)),
    )?;
    Ok(())
}
