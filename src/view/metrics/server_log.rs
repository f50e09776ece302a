//! What the auth server's own log says: login outcomes and events by level.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::counters;
use crate::event::{AuthKind, LogLevel};
use crate::families;
use crate::store::{View, OUTCOMES};

pub fn encode(v: &View, enc: &mut DescriptorEncoder) -> fmt::Result {
    let c = &v.counters;
    counters(
        enc,
        &families::AUTHENTICATIONS,
        AuthKind::ALL.iter().flat_map(|kind| {
            OUTCOMES.iter().enumerate().map(move |(ok, outcome)| {
                (
                    vec![("kind", kind.as_str()), ("outcome", *outcome)],
                    c.authentications[*kind as usize][ok],
                )
            })
        }),
    )?;
    counters(
        enc,
        &families::SERVER_LOG_MESSAGES,
        LogLevel::ALL.iter().map(|l| {
            (
                vec![("level", l.as_str())],
                c.server_log_messages[*l as usize],
            )
        }),
    )
}
