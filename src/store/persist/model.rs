//! The snapshot's own types: what is saved, independent of the store's and the views'
//! in-memory layout. Every value is keyed by its metric family and label values
//! (`jans_upstream_errors{endpoint="stat",reason="timeout"}`), so a new label value or
//! enum variant starts at zero and a retired one is dropped, never shifting another.

use std::collections::BTreeMap;

use base64::Engine;
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::event::{FileCheckpoint, UserSet};
use crate::families::Family;
use crate::store::redis_hll::RedisRegisters;
use crate::store::sketch::{ActiveUsers, SketchRepr, PERIOD_KINDS};

/// `family{label="value",...}`: the key of one series in the snapshot.
pub fn key(family: &Family, values: &[&str]) -> String {
    let mut out = String::with_capacity(family.name.len() + 16 * values.len());
    out.push_str(family.name);
    if !values.is_empty() {
        out.push('{');
        for (i, (label, value)) in family.labels.iter().zip(values).enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(label);
            out.push_str("=\"");
            for c in value.chars() {
                if matches!(c, '"' | '\\') {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        }
        out.push('}');
    }
    out
}

/// A parsed key: the family name and its label values in the order written.
#[derive(Debug, PartialEq, Eq)]
pub struct Key<'a> {
    pub name: &'a str,
    pub labels: Vec<(&'a str, String)>,
}

impl Key<'_> {
    pub fn get(&self, label: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(l, _)| *l == label)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a key written by [`key`]; `None` for anything else.
pub fn parse_key(key: &str) -> Option<Key<'_>> {
    let Some((name, rest)) = key.split_once('{') else {
        return Some(Key {
            name: key,
            labels: Vec::new(),
        });
    };
    let mut rest = rest.strip_suffix('}')?;
    let mut labels = Vec::new();
    while !rest.is_empty() {
        let (label, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => value.push(chars.next()?.1),
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        labels.push((label, value));
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Some(Key { name, labels })
}

/// A histogram with its bucket bounds, so a change of bounds is noticed, not misread.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistogramRepr {
    /// Upper bounds, without +Inf.
    pub le: Vec<f64>,
    /// One count per bound, then the +Inf bucket.
    pub buckets: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

/// FIDO2 polling state: where it stopped, what it has counted, which labels it admitted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Fido2Section {
    pub synced_ms: Option<i64>,
    /// `(entry id hash, entry time)` pairs, as little-endian 16-byte records in base64.
    #[serde(with = "seen_codec")]
    pub seen: Vec<(u64, i64)>,
    pub categories: Vec<String>,
    pub fallback_methods: Vec<String>,
}

/// Records waiting for their twin (see `store::pairing`): `(key, record time)`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PendingSection {
    #[serde(with = "seen_codec")]
    pub authorizations: Vec<(u64, i64)>,
}

mod seen_codec {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(seen: &[(u64, i64)], s: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::with_capacity(seen.len() * 16);
        for (id, ts) in seen {
            bytes.extend_from_slice(&id.to_le_bytes());
            bytes.extend_from_slice(&ts.to_le_bytes());
        }
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(u64, i64)>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)?;
        if bytes.len() % 16 != 0 {
            return Err(serde::de::Error::custom("seen ids are 16 bytes each"));
        }
        Ok(bytes
            .chunks_exact(16)
            .map(|c| {
                let mut id = [0u8; 8];
                let mut ts = [0u8; 8];
                id.copy_from_slice(&c[..8]);
                ts.copy_from_slice(&c[8..]);
                (u64::from_le_bytes(id), i64::from_le_bytes(ts))
            })
            .collect())
    }
}

/// Sketches by set (`active_users`, `fido2_users`), period kind and period key.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SketchSets {
    pub precision: u8,
    pub sets: BTreeMap<String, BTreeMap<String, BTreeMap<u32, SketchRepr>>>,
}

/// A sketch as it is written: `{"sparse": base64}` or `{"dense": base64}`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum SketchJson<'a> {
    Sparse(std::borrow::Cow<'a, str>),
    Dense(std::borrow::Cow<'a, str>),
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl SketchJson<'_> {
    fn of(repr: &SketchRepr) -> SketchJson<'static> {
        match repr {
            SketchRepr::Sparse(b) => SketchJson::Sparse(b64(b).into()),
            SketchRepr::Dense(b) => SketchJson::Dense(b64(b).into()),
        }
    }

    fn repr(&self) -> Result<SketchRepr, base64::DecodeError> {
        let e = base64::engine::general_purpose::STANDARD;
        Ok(match self {
            SketchJson::Sparse(t) => SketchRepr::Sparse(e.decode(t.as_bytes())?),
            SketchJson::Dense(t) => SketchRepr::Dense(e.decode(t.as_bytes())?),
        })
    }
}

#[derive(Deserialize)]
struct SketchSetsJson<'a> {
    precision: u8,
    #[serde(borrow)]
    sets: BTreeMap<String, BTreeMap<String, BTreeMap<String, SketchJson<'a>>>>,
}

/// Reads the sketches section. A sketch that cannot be read costs itself, reported in
/// the second value; the others are kept.
pub fn decode_sketches(raw: &str) -> Result<(SketchSets, usize), serde_json::Error> {
    let json: SketchSetsJson = serde_json::from_str(raw)?;
    let mut bad = 0;
    let mut out = SketchSets {
        precision: json.precision,
        sets: BTreeMap::new(),
    };
    for (set, kinds) in json.sets {
        for (kind, periods) in kinds {
            for (period, sketch) in periods {
                match (period.parse::<u32>(), sketch.repr()) {
                    (Ok(p), Ok(repr)) => {
                        out.sets
                            .entry(set.clone())
                            .or_default()
                            .entry(kind.clone())
                            .or_default()
                            .insert(p, repr);
                    }
                    _ => bad += 1,
                }
            }
        }
    }
    Ok((out, bad))
}

/// Everything a snapshot holds, as loaded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Persisted {
    pub saved_at_ms: i64,
    /// Exact counters.
    pub counters: BTreeMap<String, u64>,
    pub histograms: BTreeMap<String, HistogramRepr>,
    /// Instants (epoch ms): the newest record, each endpoint's last success.
    pub times: BTreeMap<String, i64>,
    /// Latest values reported upstream (stat endpoint MAU and token counts).
    pub gauges: BTreeMap<String, u64>,
    /// Highest token count seen per month, grant and token type.
    pub high_water: BTreeMap<String, u64>,
    pub checkpoints: Vec<FileCheckpoint>,
    /// Files no longer followed, with where each stopped (version 3).
    pub closed: Vec<FileCheckpoint>,
    pub sketches: SketchSets,
    pub fido2: Fido2Section,
    pub pending: PendingSection,
    /// Redis-compatible registers per user set, period kind and period key, packed 6
    /// bits each as in Redis's dense encoding (version 4; only with a cluster configured).
    pub cluster_registers: ClusterRegistersIn,
    /// The Okta source's checkpoint, recent event ids and authorization servers
    /// (version 5).
    pub okta: crate::store::okta::OktaSection,
    /// Sections (or single sketches) that could not be read, by section name.
    pub dropped: Vec<&'static str>,
}

/// The sections of a body, in the order written: version 2's, `closed` since version
/// 3, `cluster_registers` since version 4, `okta` since version 5.
pub const SECTIONS: [&str; 12] = [
    "counters",
    "histograms",
    "times",
    "gauges",
    "high_water",
    "checkpoints",
    "sketches",
    "fido2",
    "pending",
    "closed",
    "cluster_registers",
    "okta",
];

/// What a save writes: small sections owned, the large ones (sketches) borrowed and
/// encoded one sketch at a time, so a save never copies the store.
pub struct SnapshotOut<'a> {
    pub saved_at_ms: i64,
    pub counters: BTreeMap<String, u64>,
    pub histograms: BTreeMap<String, HistogramRepr>,
    pub times: BTreeMap<String, i64>,
    pub gauges: BTreeMap<String, u64>,
    pub high_water: BTreeMap<String, u64>,
    pub checkpoints: Vec<&'a FileCheckpoint>,
    pub closed: Vec<&'a FileCheckpoint>,
    pub precision: u8,
    pub sketch_sets: Vec<(&'static str, &'a ActiveUsers)>,
    pub fido2: Fido2Section,
    pub pending: PendingSection,
    /// The registers of [`UserSet::ALL`], in that order.
    pub cluster_registers: Option<[&'a ActiveUsers<RedisRegisters>; 2]>,
    /// Only with an Okta org configured.
    pub okta: Option<crate::store::okta::OktaSection>,
}

/// `{set: {kind: {period: base64 of the packed registers}}}`, the sets in
/// [`UserSet::ALL`] order.
struct ClusterRegistersOut<'a>(Option<[&'a ActiveUsers<RedisRegisters>; 2]>);

impl Serialize for ClusterRegistersOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        if let Some(sets) = self.0 {
            for (set, registers) in UserSet::ALL.iter().zip(sets) {
                let mut kinds = BTreeMap::new();
                for kind in PERIOD_KINDS {
                    let Some(periods) = registers.periods(kind) else {
                        continue;
                    };
                    let encoded: BTreeMap<String, String> = periods
                        .iter()
                        .map(|(k, r)| (k.to_string(), b64(&r.packed())))
                        .collect();
                    kinds.insert(kind, encoded);
                }
                map.serialize_entry(set.as_str(), &kinds)?;
            }
        }
        map.end()
    }
}

/// Packed registers by (set, period kind) and period key, as loaded.
pub type ClusterRegistersIn = BTreeMap<(String, String), BTreeMap<u32, Vec<u8>>>;

/// Reads the cluster registers section; a period that does not decode costs itself.
fn decode_cluster_registers(raw: &str) -> Result<(ClusterRegistersIn, usize), serde_json::Error> {
    type Json = BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>>;
    let json: Json = serde_json::from_str(raw)?;
    let e = base64::engine::general_purpose::STANDARD;
    let mut bad = 0;
    let mut out = ClusterRegistersIn::new();
    for (set, kinds) in json {
        for (kind, periods) in kinds {
            for (period, text) in periods {
                match (period.parse::<u32>(), e.decode(text.as_bytes())) {
                    (Ok(p), Ok(bytes)) => {
                        out.entry((set.clone(), kind.clone()))
                            .or_default()
                            .insert(p, bytes);
                    }
                    _ => bad += 1,
                }
            }
        }
    }
    Ok((out, bad))
}

struct SketchSetsOut<'a>(u8, &'a [(&'static str, &'a ActiveUsers)]);

struct KindsOut<'a>(&'a ActiveUsers);

struct PeriodsOut<'a>(&'a crate::store::sketch::Periods);

impl Serialize for PeriodsOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (key, sketch) in self.0.iter() {
            let repr = sketch.to_repr().map_err(serde::ser::Error::custom)?;
            map.serialize_entry(&key.to_string(), &SketchJson::of(&repr))?;
        }
        map.end()
    }
}

impl Serialize for KindsOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(PERIOD_KINDS.len()))?;
        for kind in PERIOD_KINDS {
            if let Some(periods) = self.0.periods(kind) {
                map.serialize_entry(kind, &PeriodsOut(periods))?;
            }
        }
        map.end()
    }
}

impl Serialize for SketchSetsOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Sets<'a>(&'a [(&'static str, &'a ActiveUsers)]);
        impl Serialize for Sets<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut map = s.serialize_map(Some(self.0.len()))?;
                for (name, users) in self.0 {
                    map.serialize_entry(name, &KindsOut(users))?;
                }
                map.end()
            }
        }
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("precision", &self.0)?;
        map.serialize_entry("sets", &Sets(self.1))?;
        map.end()
    }
}

impl Serialize for SnapshotOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(SECTIONS.len() + 1))?;
        map.serialize_entry("saved_at_ms", &self.saved_at_ms)?;
        map.serialize_entry("counters", &self.counters)?;
        map.serialize_entry("histograms", &self.histograms)?;
        map.serialize_entry("times", &self.times)?;
        map.serialize_entry("gauges", &self.gauges)?;
        map.serialize_entry("high_water", &self.high_water)?;
        map.serialize_entry("checkpoints", &self.checkpoints)?;
        map.serialize_entry(
            "sketches",
            &SketchSetsOut(self.precision, &self.sketch_sets),
        )?;
        map.serialize_entry("fido2", &self.fido2)?;
        map.serialize_entry("pending", &self.pending)?;
        map.serialize_entry("closed", &self.closed)?;
        if let Some(okta) = &self.okta {
            map.serialize_entry("okta", okta)?;
        }
        map.serialize_entry(
            "cluster_registers",
            &ClusterRegistersOut(self.cluster_registers),
        )?;
        map.end()
    }
}

/// Reads a version-2, -3 or -4 body section by section (version 3 adds `closed`,
/// version 4 `cluster_registers`; an older body lacks them and leaves them empty): a
/// section that does not decode is named in `dropped` and left empty; the others load.
pub fn decode_v2(body: &[u8]) -> Result<Persisted, String> {
    let sections: BTreeMap<String, &serde_json::value::RawValue> =
        serde_json::from_slice(body).map_err(|e| format!("version 2 body: {e}"))?;
    let mut p = Persisted::default();
    if let Some(raw) = sections.get("saved_at_ms") {
        p.saved_at_ms = serde_json::from_str(raw.get()).unwrap_or(0);
    }
    fn section<T: for<'de> Deserialize<'de> + Default>(
        sections: &BTreeMap<String, &serde_json::value::RawValue>,
        name: &'static str,
        dropped: &mut Vec<&'static str>,
    ) -> T {
        match sections.get(name) {
            None => T::default(),
            Some(raw) => serde_json::from_str(raw.get()).unwrap_or_else(|e| {
                tracing::warn!(section = name, error = %e, "snapshot section unreadable: it starts again");
                dropped.push(name);
                T::default()
            }),
        }
    }
    p.counters = section(&sections, "counters", &mut p.dropped);
    p.histograms = section(&sections, "histograms", &mut p.dropped);
    p.times = section(&sections, "times", &mut p.dropped);
    p.gauges = section(&sections, "gauges", &mut p.dropped);
    p.high_water = section(&sections, "high_water", &mut p.dropped);
    p.checkpoints = section(&sections, "checkpoints", &mut p.dropped);
    p.fido2 = section(&sections, "fido2", &mut p.dropped);
    p.pending = section(&sections, "pending", &mut p.dropped);
    p.closed = section(&sections, "closed", &mut p.dropped);
    p.okta = section(&sections, "okta", &mut p.dropped);
    if let Some(raw) = sections.get("cluster_registers") {
        match decode_cluster_registers(raw.get()) {
            Ok((registers, bad)) => {
                if bad > 0 {
                    tracing::warn!(
                        periods = bad,
                        "snapshot cluster registers unreadable: those periods start again"
                    );
                    p.dropped.push("cluster_registers");
                }
                p.cluster_registers = registers;
            }
            Err(e) => {
                tracing::warn!(section = "cluster_registers", error = %e, "snapshot section unreadable: it starts again");
                p.dropped.push("cluster_registers");
            }
        }
    }
    if let Some(raw) = sections.get("sketches") {
        match decode_sketches(raw.get()) {
            Ok((sets, bad)) => {
                if bad > 0 {
                    tracing::warn!(
                        sketches = bad,
                        "snapshot sketches unreadable: those periods start again"
                    );
                    p.dropped.push("sketches");
                }
                p.sketches = sets;
            }
            Err(e) => {
                tracing::warn!(section = "sketches", error = %e, "snapshot section unreadable: it starts again");
                p.dropped.push("sketches");
            }
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families;

    #[test]
    fn keys_round_trip_with_quotes_and_backslashes() {
        let k = key(&families::FIDO2_ERRORS, &["authentication", "A\"B\\C"]);
        assert_eq!(
            k,
            r#"jans_fido2_errors{operation="authentication",category="A\"B\\C"}"#
        );
        let parsed = parse_key(&k).unwrap();
        assert_eq!(parsed.name, "jans_fido2_errors");
        assert_eq!(parsed.get("category"), Some("A\"B\\C"));
        assert_eq!(parsed.get("operation"), Some("authentication"));
        assert_eq!(parse_key("jans_exporter_log_read").unwrap().labels, vec![]);
        assert_eq!(parse_key("broken{a=\"1\""), None);
        assert_eq!(parse_key("broken{a=1}"), None);
    }

    #[test]
    fn seen_ids_round_trip() {
        let f = Fido2Section {
            synced_ms: Some(5),
            seen: vec![(u64::MAX, -1), (7, 1_795_000_000_000)],
            categories: vec!["X".into()],
            fallback_methods: vec![],
        };
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(serde_json::from_str::<Fido2Section>(&json).unwrap(), f);
    }
}
