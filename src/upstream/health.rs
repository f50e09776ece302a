//! `/jans-auth/sys/health-check` (reference §3): `{"status": "running"|"starting",
//! "db_status": "online"|"offline", ...plugins}`, always HTTP 200. Newer servers append
//! one entry per plugin and an external health-check script's reply is the whole body:
//! only `status` and `db_status` are read, the rest is ignored, and a body without a
//! string `status` is a `decode` error (not up), never a crash or a silent "up".

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::{Client, Endpoint, Poller};
use crate::event::Event;
pub use crate::event::HealthReport;

#[derive(Deserialize)]
struct Raw {
    status: String,
    db_status: Option<String>,
}

pub struct HealthPoller {
    pub client: Arc<Client>,
    pub interval: Duration,
}

const HEALTH_PATH: &str = "/jans-auth/sys/health-check";

impl Poller for HealthPoller {
    fn poll<'a>(
        &'a mut self,
        events: &'a mut Vec<Event>,
        _leading: bool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
        Box::pin(async move {
            let url = self.client.url(HEALTH_PATH);
            match self
                .client
                .get_json::<Raw>(Endpoint::Health, &url, &[], events)
                .await
            {
                Ok(raw) => {
                    events.push(Event::Health(HealthReport {
                        running: raw.status.eq_ignore_ascii_case("running"),
                        starting: raw.status.eq_ignore_ascii_case("starting"),
                        db_online: raw
                            .db_status
                            .is_some_and(|d| d.eq_ignore_ascii_case("online")),
                        at_ms: chrono::Utc::now().timestamp_millis(),
                    }));
                    true
                }
                Err(_) => false,
            }
        })
    }
    fn interval(&self) -> Duration {
        self.interval
    }
    fn name(&self) -> &'static str {
        "health"
    }
    fn target(&self) -> String {
        super::shown_url(&self.client.url(HEALTH_PATH))
    }
}
