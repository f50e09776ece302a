//! The connection budget: at most [`MAX_CONNECTIONS`] at once, and when all are taken a
//! new caller evicts the oldest connection that is between requests (or has never sent
//! one) instead of waiting behind it. Idle keep-alives and sockets that send nothing can
//! then never keep Prometheus or a real API caller out; a connection in the middle of a
//! request is only asked to close after it (its body read is bounded in time).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Open connections at most; further ones evict an idle one or wait.
pub const MAX_CONNECTIONS: usize = 256;

/// What the budget knows of one connection.
#[derive(Debug, Default)]
pub struct Conn {
    id: u64,
    /// A request is being read or answered.
    busy: AtomicBool,
    /// Set by an eviction: close once the current request (if any) is answered.
    pub evict: Notify,
}

impl Conn {
    /// Marks a request in flight for as long as the guard lives.
    pub fn request(self: &Arc<Self>) -> RequestGuard {
        self.busy.store(true, Ordering::Relaxed);
        RequestGuard(Arc::clone(self))
    }
}

pub struct RequestGuard(Arc<Conn>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::Relaxed);
    }
}

#[derive(Debug)]
pub struct Budget {
    slots: Arc<Semaphore>,
    /// Live connections, oldest first.
    live: Mutex<VecDeque<Arc<Conn>>>,
    next_id: AtomicU64,
}

/// A connection's place in the budget; gives it back when dropped.
pub struct Admitted {
    _slot: OwnedSemaphorePermit,
    budget: Arc<Budget>,
    pub conn: Arc<Conn>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Ok(mut live) = self.budget.live.lock() {
            live.retain(|c| c.id != self.conn.id);
        }
    }
}

impl Budget {
    pub fn new(max: usize) -> Arc<Budget> {
        Arc::new(Budget {
            slots: Arc::new(Semaphore::new(max)),
            live: Mutex::new(VecDeque::new()),
            next_id: AtomicU64::new(0),
        })
    }

    /// A place for a connection just accepted: a free slot, or one freed by evicting the
    /// oldest idle connection (the oldest of all if every one is busy).
    pub async fn admit(self: &Arc<Self>) -> Option<Admitted> {
        let slot = match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                self.evict_one();
                Arc::clone(&self.slots).acquire_owned().await.ok()?
            }
        };
        let conn = Arc::new(Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            ..Conn::default()
        });
        if let Ok(mut live) = self.live.lock() {
            live.push_back(Arc::clone(&conn));
        }
        Some(Admitted {
            _slot: slot,
            budget: Arc::clone(self),
            conn,
        })
    }

    fn evict_one(&self) {
        let Ok(mut live) = self.live.lock() else {
            return;
        };
        let at = live
            .iter()
            .position(|c| !c.busy.load(Ordering::Relaxed))
            .unwrap_or(0);
        if let Some(conn) = live.remove(at) {
            // notify_one stores a permit: a connection not yet waiting still sees it.
            conn.evict.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_budget_evicts_the_oldest_idle_connection_first() {
        let budget = Budget::new(3);
        let a = budget.admit().await.unwrap();
        let b = budget.admit().await.unwrap();
        let c = budget.admit().await.unwrap();
        let _in_request = a.conn.request();
        // Full: the fourth evicts b (a is busy), and gets b's slot once b closes.
        let evicted_b = {
            let b_conn = Arc::clone(&b.conn);
            tokio::spawn(async move { b_conn.evict.notified().await })
        };
        let fourth = tokio::spawn({
            let budget = Arc::clone(&budget);
            async move { budget.admit().await.map(|d| d.conn.id) }
        });
        tokio::time::timeout(std::time::Duration::from_secs(5), evicted_b)
            .await
            .unwrap()
            .unwrap();
        drop(b);
        let id = tokio::time::timeout(std::time::Duration::from_secs(5), fourth)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(id, Some(3));
        drop((a, c));
    }
}
