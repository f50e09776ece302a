//! HyperLogLog registers built exactly as Redis builds them, so that a sidecar's
//! registers can be `PFMERGE`d into a key shared by every replica and `PFCOUNT`ed there.
//!
//! What Redis does (`hyperloglog.c`, unchanged since Redis 3): the element is hashed
//! with MurmurHash64A, seed `0xadc83b19`; the low 14 bits pick one of 16384 registers;
//! the register keeps the largest "trailing zeros of the remaining 50 bits, plus one".
//! The element every sidecar adds for a user is the 8 little-endian bytes of its
//! [`UserKey`], so a register array built here equals the one `PFADD key <those bytes>`
//! builds in Redis. The user's name never leaves the process; only registers do.

use crate::event::UserKey;

/// Registers per sketch (`HLL_REGISTERS`, precision 14).
pub const REGISTERS: usize = 1 << PRECISION;
pub const PRECISION: u8 = 14;
/// Bits of the hash left after the register index (`HLL_Q`).
const Q: u32 = 64 - PRECISION as u32;
/// The largest value a register can hold.
pub const MAX_RANK: u8 = Q as u8 + 1;
/// The header of Redis's string encoding (`struct hllhdr`): magic, encoding, 3 unused
/// bytes, 8 bytes of cached cardinality.
const HEADER: usize = 16;
/// Dense encoding: 6-bit registers, least significant bit first.
pub const DENSE_BYTES: usize = HEADER + (REGISTERS * 6).div_ceil(8);
const SEED: u64 = 0xadc8_3b19;

/// MurmurHash64A as Redis uses it (little-endian blocks, tail mixed byte by byte).
pub fn murmur_hash64a(key: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (key.len() as u64).wrapping_mul(M);
    let mut blocks = key.chunks_exact(8);
    for block in &mut blocks {
        let mut b = [0u8; 8];
        b.copy_from_slice(block);
        let mut k = u64::from_le_bytes(b).wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        for (i, byte) in tail.iter().enumerate() {
            h ^= u64::from(*byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register a user touches and the value it offers (`hllPatLen`).
fn index_and_rank(user: UserKey) -> (usize, u8) {
    let hash = murmur_hash64a(&user.0.to_le_bytes(), SEED);
    let index = (hash & (REGISTERS as u64 - 1)) as usize;
    let rest = (hash >> PRECISION) | (1u64 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

/// 16384 registers, one byte each (unpacked: an insert is one compare).
#[derive(Clone)]
pub struct RedisRegisters {
    registers: Box<[u8; REGISTERS]>,
    /// Cached until the next change; not part of equality.
    estimate: Option<u64>,
}

impl PartialEq for RedisRegisters {
    fn eq(&self, other: &RedisRegisters) -> bool {
        self.registers == other.registers
    }
}

impl Eq for RedisRegisters {}

impl std::fmt::Debug for RedisRegisters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let used = self.registers.iter().filter(|r| **r != 0).count();
        write!(f, "RedisRegisters({used} of {REGISTERS} set)")
    }
}

impl Default for RedisRegisters {
    fn default() -> RedisRegisters {
        RedisRegisters {
            registers: Box::new([0; REGISTERS]),
            estimate: None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistersError {
    #[error("{0} bytes where a dense HyperLogLog has {DENSE_BYTES}")]
    Length(usize),
    #[error("not a dense HyperLogLog (magic or encoding)")]
    Header,
    #[error("register value {0} is over the maximum rank {MAX_RANK}")]
    Rank(u8),
}

impl RedisRegisters {
    pub fn insert(&mut self, user: UserKey) {
        let (index, rank) = index_and_rank(user);
        if self.registers[index] < rank {
            self.registers[index] = rank;
            self.estimate = None;
        }
    }

    /// Per-register maximum: the union, as `PFMERGE` computes it.
    pub fn merge(&mut self, other: &RedisRegisters) {
        for (mine, theirs) in self.registers.iter_mut().zip(other.registers.iter()) {
            *mine = (*mine).max(*theirs);
        }
        self.estimate = None;
    }

    /// The first register where two sets differ, for a test's message.
    pub fn first_difference(&self, other: &RedisRegisters) -> Option<(usize, u8, u8)> {
        (0..REGISTERS)
            .find(|&i| self.registers[i] != other.registers[i])
            .map(|i| (i, self.registers[i], other.registers[i]))
    }

    pub fn is_empty(&self) -> bool {
        self.registers.iter().all(|r| *r == 0)
    }

    /// The 12288 bytes of 6-bit registers, as in Redis's dense encoding.
    pub fn packed(&self) -> Vec<u8> {
        let mut out = vec![0u8; DENSE_BYTES - HEADER];
        pack_into(&self.registers, &mut out);
        out
    }

    pub fn from_packed(bytes: &[u8]) -> Result<RedisRegisters, RegistersError> {
        if bytes.len() != DENSE_BYTES - HEADER {
            return Err(RegistersError::Length(bytes.len() + HEADER));
        }
        let mut r = RedisRegisters::default();
        for (i, slot) in r.registers.iter_mut().enumerate() {
            let bit = i * 6;
            let (byte, shift) = (bit / 8, bit % 8);
            let lo = u16::from(bytes[byte]);
            let hi = bytes.get(byte + 1).copied().map_or(0, u16::from);
            let value = (((hi << 8 | lo) >> shift) & 0x3f) as u8;
            if value > MAX_RANK {
                return Err(RegistersError::Rank(value));
            }
            *slot = value;
        }
        Ok(r)
    }

    /// The value of a Redis key holding these registers: the dense `HYLL` string, its
    /// cached cardinality marked invalid so that `PFCOUNT` computes it.
    pub fn to_dense_hyll(&self) -> Vec<u8> {
        let mut out = vec![0u8; DENSE_BYTES];
        out[..4].copy_from_slice(b"HYLL");
        // encoding 0 = dense; card[7]'s top bit set = cache invalid.
        out[15] = 0x80;
        pack_into(&self.registers, &mut out[HEADER..]);
        out
    }

    /// Reads a dense `HYLL` string (as `GET` returns it after `PFMERGE`).
    pub fn from_dense_hyll(bytes: &[u8]) -> Result<RedisRegisters, RegistersError> {
        if bytes.len() != DENSE_BYTES {
            return Err(RegistersError::Length(bytes.len()));
        }
        if &bytes[..4] != b"HYLL" || bytes[4] != 0 {
            return Err(RegistersError::Header);
        }
        RedisRegisters::from_packed(&bytes[HEADER..])
    }

    /// The cardinality `PFCOUNT` answers for these registers: Redis's estimator (Ertl's
    /// improved raw estimate, `hllCount`), computed the same way in `f64`.
    pub fn estimate(&mut self) -> u64 {
        if let Some(e) = self.estimate {
            return e;
        }
        let mut histogram = [0u32; Q as usize + 2];
        for r in self.registers.iter() {
            histogram[usize::from(*r)] += 1;
        }
        let m = REGISTERS as f64;
        let mut z = m * tau((m - f64::from(histogram[Q as usize + 1])) / m);
        for j in (1..=Q as usize).rev() {
            z += f64::from(histogram[j]);
            z *= 0.5;
        }
        z += m * sigma(f64::from(histogram[0]) / m);
        const ALPHA_INF: f64 = 0.721_347_520_444_481_7;
        let e = (ALPHA_INF * m * m / z).round();
        let e = if e.is_finite() && e > 0.0 {
            e as u64
        } else {
            0
        };
        self.estimate = Some(e);
        e
    }
}

fn pack_into(registers: &[u8; REGISTERS], out: &mut [u8]) {
    for (i, r) in registers.iter().enumerate() {
        let bit = i * 6;
        let (byte, shift) = (bit / 8, bit % 8);
        let v = u16::from(*r & 0x3f) << shift;
        out[byte] |= v as u8;
        if shift > 2 {
            out[byte + 1] |= (v >> 8) as u8;
        }
    }
}

/// `hllSigma`.
fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let before = z;
        z += x * y;
        y += y;
        if before == z {
            return z;
        }
    }
}

/// `hllTau`.
fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let before = z;
        y *= 0.5;
        z -= (1.0 - x).powi(2) * y;
        if before == z {
            return z / 3.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(range: std::ops::Range<u32>) -> impl Iterator<Item = UserKey> {
        range.map(|i| UserKey::of(&format!("user{i:06}@example.org")))
    }

    #[test]
    fn murmur_of_nothing_with_seed_zero_is_zero() {
        // The one value that follows from the algorithm alone; every other value is
        // checked against a real Redis (`tests/cluster.rs`: registers equal PFADD's).
        assert_eq!(murmur_hash64a(b"", 0), 0);
        assert_ne!(murmur_hash64a(b"a", SEED), murmur_hash64a(b"b", SEED));
    }

    #[test]
    fn the_dense_string_round_trips_and_is_rejected_when_damaged() {
        let mut r = RedisRegisters::default();
        for u in users(0..5000) {
            r.insert(u);
        }
        let hyll = r.to_dense_hyll();
        assert_eq!(hyll.len(), 12304);
        assert_eq!(&hyll[..4], b"HYLL");
        assert_eq!(hyll[15] & 0x80, 0x80);
        assert_eq!(RedisRegisters::from_dense_hyll(&hyll).unwrap(), r);
        assert_eq!(RedisRegisters::from_packed(&r.packed()).unwrap(), r);
        assert_eq!(
            RedisRegisters::from_dense_hyll(&hyll[..100]),
            Err(RegistersError::Length(100))
        );
        let mut bad = hyll.clone();
        bad[4] = 1;
        assert_eq!(
            RedisRegisters::from_dense_hyll(&bad),
            Err(RegistersError::Header)
        );
        let mut bad = hyll;
        bad[16] |= 0x3f; // register 0 = 63
        assert_eq!(
            RedisRegisters::from_dense_hyll(&bad),
            Err(RegistersError::Rank(63))
        );
    }

    #[test]
    fn estimates_are_within_the_promised_error_and_merge_is_a_union() {
        for n in [0u32, 1, 2, 10, 99, 1000, 20_000, 100_000] {
            let mut r = RedisRegisters::default();
            for u in users(0..n) {
                r.insert(u);
                r.insert(u);
            }
            let e = r.estimate() as f64;
            let err = (e - f64::from(n)).abs();
            assert!(
                if n < 100 {
                    err <= 1.0
                } else {
                    err / f64::from(n) <= 0.02
                },
                "n={n} estimate={e}"
            );
        }
        let mut a = RedisRegisters::default();
        let mut b = RedisRegisters::default();
        let mut both = RedisRegisters::default();
        fill(&mut a, 0..6000);
        fill(&mut b, 3000..9000);
        fill(&mut both, 0..9000);
        let mut union = a.clone();
        union.merge(&b);
        assert_eq!(union, both);
        // Merging again changes nothing.
        union.merge(&b);
        assert_eq!(union, both);
    }

    fn fill(r: &mut RedisRegisters, range: std::ops::Range<u32>) {
        for u in users(range) {
            r.insert(u);
        }
    }

    #[test]
    fn ranks_stay_in_range() {
        for u in users(0..50_000) {
            let (i, rank) = index_and_rank(u);
            assert!(i < REGISTERS);
            assert!((1..=MAX_RANK).contains(&rank));
        }
    }
}
