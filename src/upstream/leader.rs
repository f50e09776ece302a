//! Whether this sidecar may poll the cluster-wide endpoints now. The stat endpoint and
//! the FIDO2 entries answer for the whole cluster, so with several replicas only the
//! holder of a lease in Redis polls them (`crate::cluster::lease`); the others keep
//! their counters as they are. Without a cluster every sidecar polls, as before.

use std::time::Instant;

use tokio::sync::watch;

/// The lease as the pollers see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Term {
    /// Polls are allowed until then: short of the lease's expiry in Redis, so that a
    /// holder cut off from Redis stops before another may start. `None`: not leading.
    pub until: Option<Instant>,
    /// Grows with every acquisition; a poller seeing a new one takes over.
    pub number: u64,
    /// Where a new holder's FIDO2 window starts (where the previous one stopped).
    pub fido2_since_ms: Option<i64>,
}

/// The pollers' end of the lease.
#[derive(Clone, Debug)]
pub struct LeaderGate {
    rx: watch::Receiver<Term>,
    /// Kept by [`LeaderGate::always`], so that the channel never closes.
    _always: Option<std::sync::Arc<watch::Sender<Term>>>,
}

impl LeaderGate {
    /// No cluster: always leading, one term for ever.
    pub fn always() -> LeaderGate {
        let (tx, rx) = watch::channel(Term {
            until: Some(Instant::now() + std::time::Duration::from_secs(100 * 365 * 86_400)),
            number: 1,
            fido2_since_ms: None,
        });
        LeaderGate {
            rx,
            _always: Some(std::sync::Arc::new(tx)),
        }
    }

    /// A gate moved by the lease's sender; closed (never leading) when it is dropped.
    pub fn new() -> (watch::Sender<Term>, LeaderGate) {
        let (tx, rx) = watch::channel(Term {
            until: None,
            number: 0,
            fido2_since_ms: None,
        });
        (tx, LeaderGate { rx, _always: None })
    }

    /// The current term, if it allows polling now.
    pub fn leading(&self) -> Option<Term> {
        let term = *self.rx.borrow();
        term.until.filter(|u| Instant::now() < *u).map(|_| term)
    }

    /// Resolves when the lease changes hands or is renewed; never, once closed.
    pub async fn changed(&mut self) {
        if self.rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn always_leads_and_a_new_gate_does_not_until_told() {
        assert!(LeaderGate::always().leading().is_some());
        let (tx, gate) = LeaderGate::new();
        assert!(gate.leading().is_none());
        tx.send_replace(Term {
            until: Some(Instant::now() + Duration::from_secs(5)),
            number: 1,
            fido2_since_ms: Some(7),
        });
        assert_eq!(gate.leading().map(|t| t.fido2_since_ms), Some(Some(7)));
        // A term that has run out no longer leads, even before the sender says so.
        tx.send_replace(Term {
            until: Some(Instant::now()),
            number: 1,
            fido2_since_ms: None,
        });
        assert!(gate.leading().is_none());
    }

    #[tokio::test]
    async fn a_dropped_sender_closes_the_gate_without_waking_forever() {
        let (tx, mut gate) = LeaderGate::new();
        drop(tx);
        let woke = tokio::time::timeout(Duration::from_millis(50), gate.changed()).await;
        assert!(woke.is_err(), "changed() must not spin on a closed channel");
        assert!(gate.leading().is_none());
    }
}
