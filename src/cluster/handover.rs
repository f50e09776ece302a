//! The handover as Redis stores it: a versioned JSON document with named fields, never
//! the event struct itself, so that sidecars of different releases can hand over to
//! each other during a rolling upgrade.

use serde::{Deserialize, Serialize};

use crate::event::{grant_label, token_label, Handover};
use crate::store::upstream::HANDOVER_SEEN_MAX;

const VERSION: u32 = 1;
/// A larger value is not read (bounded memory whatever Redis holds).
pub const MAX_BYTES: usize = 4 << 20;

#[derive(Serialize, Deserialize)]
struct Wire {
    version: u32,
    stat_high_water: Vec<Mark>,
    fido2_synced_ms: Option<i64>,
    /// `[entry id, entry time ms]`.
    fido2_seen: Vec<(u64, i64)>,
}

#[derive(Serialize, Deserialize)]
struct Mark {
    month: u32,
    grant_type: String,
    token_type: String,
    count: u64,
}

pub fn encode(h: &Handover) -> Vec<u8> {
    let wire = Wire {
        version: VERSION,
        stat_high_water: h
            .stat_high_water
            .iter()
            .map(|(month, g, t, n)| Mark {
                month: *month,
                grant_type: g.clone(),
                token_type: t.clone(),
                count: *n,
            })
            .collect(),
        fido2_synced_ms: h.fido2_synced_ms,
        fido2_seen: h.fido2_seen.clone(),
    };
    // A struct of numbers and strings always serialises.
    serde_json::to_vec(&wire).unwrap_or_default()
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HandoverError {
    #[error("{0} bytes, more than {MAX_BYTES}")]
    TooLarge(usize),
    #[error("version {0}, this build reads {VERSION}")]
    Version(u32),
    #[error("not a handover: {0}")]
    Json(String),
}

/// Reads a stored handover; labels are normalised as the stat parser does, and at
/// most [`HANDOVER_SEEN_MAX`] FIDO2 ids are kept.
pub fn decode(bytes: &[u8]) -> Result<Handover, HandoverError> {
    if bytes.len() > MAX_BYTES {
        return Err(HandoverError::TooLarge(bytes.len()));
    }
    let wire: Wire =
        serde_json::from_slice(bytes).map_err(|e| HandoverError::Json(e.to_string()))?;
    if wire.version != VERSION {
        return Err(HandoverError::Version(wire.version));
    }
    Ok(Handover {
        stat_high_water: wire
            .stat_high_water
            .into_iter()
            .filter(|m| (1..=12).contains(&(m.month % 100)))
            .map(|m| {
                (
                    m.month,
                    grant_label(&m.grant_type).to_string(),
                    token_label(&m.token_type).to_string(),
                    m.count,
                )
            })
            .collect(),
        fido2_synced_ms: wire.fido2_synced_ms,
        fido2_seen: wire
            .fido2_seen
            .into_iter()
            .take(HANDOVER_SEEN_MAX)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_it_cannot_trust() {
        let h = Handover {
            stat_high_water: vec![(
                202612,
                "client_credentials".into(),
                "access_token".into(),
                42,
            )],
            fido2_synced_ms: Some(1_796_205_600_000),
            fido2_seen: vec![(7, 1_796_205_500_000)],
        };
        assert_eq!(decode(&encode(&h)), Ok(h));
        assert!(matches!(decode(b"{}"), Err(HandoverError::Json(_))));
        assert_eq!(
            decode(br#"{"version":9,"stat_high_water":[],"fido2_synced_ms":null,"fido2_seen":[]}"#),
            Err(HandoverError::Version(9))
        );
        let odd = br#"{"version":1,"stat_high_water":[{"month":202613,"grant_type":"x","token_type":"y","count":1},{"month":202612,"grant_type":"urn:evil","token_type":"access_token","count":1}],"fido2_synced_ms":null,"fido2_seen":[]}"#;
        let d = decode(odd).unwrap();
        assert_eq!(
            d.stat_high_water,
            vec![(202612, "other".into(), "access_token".into(), 1)]
        );
        assert_eq!(
            decode(&vec![b' '; MAX_BYTES + 1]),
            Err(HandoverError::TooLarge(MAX_BYTES + 1))
        );
    }
}
