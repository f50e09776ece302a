//! Who polls the cluster-wide endpoints. The stat endpoint and the FIDO2 entries
//! answer for the whole cluster; with every sidecar polling them, every sidecar would
//! count the same tokens and ceremonies. One lease in Redis (a key holding the
//! holder's id, with an expiry) picks one poller; the others keep their counters as
//! they are. The holder renews it every third of `sync_interval` and hands over what
//! it counted (`crate::event::Handover`); when it stops, another sidecar takes the
//! lease within one `sync_interval` and continues from the handover, so the sum of
//! every sidecar's counters counts each token once.

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

use super::connection::Redis;
use super::{handover, keys};
use crate::event::{Batch, Event, Handover, Leadership, Message};
use crate::upstream::leader::Term;

/// KEYS[1]: the lease; KEYS[2]: the handover.
/// ARGV[1]: this sidecar's id; ARGV[2]: the lease time (ms); ARGV[3]: a handover to
/// store, or ''; ARGV[4]: the handover's expiry (ms); ARGV[5]: the largest handover
/// read back (bytes); ARGV[6]: '1' when the caller does not believe it holds the lease
/// (its last round went unanswered), so that a renewal hands the handover back too.
/// Returns {0}: another sidecar holds it; {1}: renewed; {2, handover or ''}: taken, or
/// renewed by a caller that did not know it held it; {3}: likewise, but the handover is
/// larger than ARGV[5] (not sent: bounded memory).
pub const TAKE_OR_RENEW: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] and ARGV[6] ~= '1' then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  if ARGV[3] ~= '' then
    redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
  end
  return {1}
elseif holder == ARGV[1] or not holder then
  -- Read first: an error here (a missing permission) leaves the lease untaken.
  local size = redis.call('STRLEN', KEYS[2])
  local handover = ''
  if size <= tonumber(ARGV[5]) then
    handover = redis.call('GET', KEYS[2]) or ''
  end
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  if size > tonumber(ARGV[5]) then
    return {3}
  end
  return {2, handover}
end
return {0}
";

/// KEYS and ARGV[1], ARGV[3], ARGV[4] as above, ARGV[2] unused: stores the last
/// handover and lets the lease go, if this sidecar holds it. Returns 1 if it did.
pub const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if ARGV[3] ~= '' then
    redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
  end
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
";

/// A handover outlives its last write by this much: long after the months it names
/// stopped growing.
const HANDOVER_TTL: Duration = Duration::from_secs(45 * 86_400);

pub struct Lease {
    gate: watch::Sender<Term>,
    lease_key: String,
    handover_key: String,
    /// How long Redis keeps the lease without a renewal.
    ttl: Duration,
    /// How long this sidecar polls after a renewal was sent: short of `ttl`, so that
    /// a holder cut off from Redis stops before another may start.
    valid: Duration,
    /// The FIDO2 overlap: entries counted this long before the synced time are named
    /// in the handover, and a new holder's window starts this long before it.
    fido2_overlap_ms: i64,
    term: u64,
    leading: bool,
    /// The store has been told whether this sidecar leads (at the first answer).
    told: bool,
    /// Hash of the handover last stored, to store it only when it changed.
    stored: Option<u64>,
    take: redis::Script,
    release: redis::Script,
}

/// Lease timings for a `sync_interval`: renewed (or tried) every third of it, kept
/// by Redis two thirds of it, so that a stopped holder is replaced within one interval.
pub fn timings(sync_interval: Duration) -> (Duration, Duration, Duration) {
    let every = sync_interval / 3;
    let ttl = sync_interval * 2 / 3;
    let valid = sync_interval / 2;
    (every, ttl, valid)
}

impl Lease {
    pub fn new(
        prefix: &str,
        sync_interval: Duration,
        fido2_overlap: Duration,
        gate: watch::Sender<Term>,
    ) -> Lease {
        let (_, ttl, valid) = timings(sync_interval);
        Lease {
            gate,
            lease_key: keys::lease(prefix),
            handover_key: keys::handover(prefix),
            ttl,
            valid,
            fido2_overlap_ms: i64::try_from(fido2_overlap.as_millis()).unwrap_or(i64::MAX),
            term: 0,
            leading: false,
            told: false,
            stored: None,
            take: redis::Script::new(TAKE_OR_RENEW),
            release: redis::Script::new(RELEASE),
        }
    }

    /// Asks the store what to hand over.
    async fn handover(&self, tx: &mpsc::Sender<Message>) -> Option<Handover> {
        let (reply, answer) = oneshot::channel();
        tx.send(Message::ExportHandover {
            window_ms: self.fido2_overlap_ms,
            reply,
        })
        .await
        .ok()?;
        answer.await.ok()
    }

    /// The handover to store with a renewal: empty when unchanged since the last one.
    async fn payload(&self, tx: &mpsc::Sender<Message>) -> (Vec<u8>, Option<u64>) {
        if !self.leading {
            return (Vec::new(), None);
        }
        let Some(h) = self.handover(tx).await else {
            return (Vec::new(), None);
        };
        let bytes = handover::encode(&h);
        let hash = xxhash_rust::xxh3::xxh3_64(&bytes);
        if self.stored == Some(hash) {
            (Vec::new(), None)
        } else {
            (bytes, Some(hash))
        }
    }

    /// Takes or renews the lease, storing the handover when leading. `Err` when Redis
    /// did not answer: leading lapses by itself once its time is up.
    pub async fn round(
        &mut self,
        redis: &mut Redis,
        instance: &str,
        tx: &mpsc::Sender<Message>,
    ) -> Result<(), redis::RedisError> {
        let (payload, hash) = self.payload(tx).await;
        let sent_at = Instant::now();
        let answer: Result<Vec<redis::Value>, _> = redis
            .invoke(
                self.take
                    .key(&self.lease_key)
                    .key(&self.handover_key)
                    .arg(instance)
                    .arg(millis(self.ttl))
                    .arg(payload.as_slice())
                    .arg(millis(HANDOVER_TTL))
                    .arg(handover::MAX_BYTES)
                    .arg(if self.leading { "0" } else { "1" }),
            )
            .await;
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                self.lapse_if_due(tx).await;
                return Err(e);
            }
        };
        let state: i64 = answer
            .first()
            .and_then(|v| redis::from_redis_value_ref(v).ok())
            .unwrap_or(0);
        match state {
            1 if self.leading => {
                if hash.is_some() {
                    self.stored = hash;
                }
                self.gate
                    .send_modify(|t| t.until = Some(sent_at + self.valid));
            }
            // (A caller not leading here is answered 2, never 1: an unexpected answer
            // is taken as another's lease, below.)
            2 | 3 => {
                if state == 3 {
                    tracing::warn!(
                        max_bytes = handover::MAX_BYTES,
                        "the handover in Redis is too large to be one: ignored"
                    );
                }
                let stored: Vec<u8> = answer
                    .get(1)
                    .and_then(|v| redis::from_redis_value_ref(v).ok())
                    .unwrap_or_default();
                let handover = if stored.is_empty() {
                    None
                } else {
                    match handover::decode(&stored) {
                        Ok(h) => Some(h),
                        Err(e) => {
                            tracing::warn!(error = %e, "the handover in Redis cannot be read: the stat counters start from the next answer");
                            None
                        }
                    }
                };
                match handover {
                    Some(h) => {
                        let since = h
                            .fido2_synced_ms
                            .map(|t| t.saturating_sub(self.fido2_overlap_ms));
                        self.acquired(Some(h), since, sent_at, tx).await;
                    }
                    // Redis lost its data under this holder: its own marks are the
                    // latest.
                    None if self.leading => {
                        self.acquired(Some(Handover::default()), None, sent_at, tx)
                            .await;
                    }
                    // The first holder, or another sidecar after Redis lost its data:
                    // the stat counters start from the next answer, and the FIDO2
                    // window one overlap back, so that at most an overlap's ceremonies
                    // a previous holder counted are counted again.
                    None => {
                        let since = crate::store::now_ms().saturating_sub(self.fido2_overlap_ms);
                        self.acquired(None, Some(since), sent_at, tx).await;
                    }
                }
            }
            _ => self.lose(tx).await,
        }
        Ok(())
    }

    /// This sidecar holds the lease now (or again, after it lapsed here): the store
    /// takes the handover first, then the pollers are let in, so that their events
    /// follow it on the store's channel.
    async fn acquired(
        &mut self,
        handover: Option<Handover>,
        fido2_since_ms: Option<i64>,
        sent_at: Instant,
        tx: &mpsc::Sender<Message>,
    ) {
        tracing::info!(
            handed_over = handover.is_some(),
            "this sidecar now polls the cluster-wide endpoints (stat, FIDO2 entries)"
        );
        send(
            tx,
            Event::Leadership(Box::new(Leadership::Acquired(handover))),
        )
        .await;
        self.told = true;
        self.term += 1;
        self.leading = true;
        self.stored = None;
        self.gate.send_replace(Term {
            until: Some(sent_at + self.valid),
            number: self.term,
            fido2_since_ms,
        });
    }

    async fn lose(&mut self, tx: &mpsc::Sender<Message>) {
        self.gate.send_modify(|t| t.until = None);
        if self.leading || !self.told {
            if self.leading {
                tracing::info!("another sidecar polls the cluster-wide endpoints now");
            }
            self.leading = false;
            self.told = true;
            send(tx, Event::Leadership(Box::new(Leadership::Lost))).await;
        }
    }

    /// Stops leading once its time is up without a renewal (Redis away or hung).
    pub async fn lapse_if_due(&mut self, tx: &mpsc::Sender<Message>) {
        let due = self.gate.borrow().until.is_none_or(|u| Instant::now() >= u);
        if self.leading && due {
            tracing::warn!("the lease could not be renewed: this sidecar stops polling the cluster-wide endpoints until Redis answers");
            self.lose(tx).await;
        }
    }

    /// A clean stop: the pollers stop, the last handover is stored and the lease let
    /// go, so that another sidecar takes over at its next try.
    pub async fn release(&mut self, redis: &mut Redis, instance: &str, tx: &mpsc::Sender<Message>) {
        if !self.leading {
            return;
        }
        self.gate.send_modify(|t| t.until = None);
        let payload = match self.handover(tx).await {
            Some(h) => handover::encode(&h),
            None => Vec::new(),
        };
        let released: Result<i64, _> = redis
            .invoke(
                self.release
                    .key(&self.lease_key)
                    .key(&self.handover_key)
                    .arg(instance)
                    .arg(0)
                    .arg(payload.as_slice())
                    .arg(millis(HANDOVER_TTL)),
            )
            .await;
        match released {
            Ok(1) => tracing::info!("lease on the cluster-wide endpoints handed over"),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "the lease could not be let go; it expires by itself")
            }
        }
        self.leading = false;
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

async fn send(tx: &mpsc::Sender<Message>, event: Event) {
    let _ = tx
        .send(Message::Batch(Batch {
            events: vec![event],
            ..Batch::default()
        }))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_holder_is_replaced_within_one_interval_and_stops_before_its_lease_ends() {
        for secs in [1u64, 30, 300] {
            let interval = Duration::from_secs(secs);
            let (every, ttl, valid) = timings(interval);
            // Killed right after a renewal: the lease ends after ttl, the others try
            // every `every`.
            assert!(ttl + every <= interval);
            // A holder that cannot renew stops polling before Redis lets another in.
            assert!(valid < ttl);
            // A healthy holder renews long before it would stop.
            assert!(every < valid);
        }
    }
}
