//! The HTTP endpoints (hyper 1): `/metrics`, `/healthz`, `/readyz` and a landing page.
//!
//! Every response is built from the store's last published view, so a scrape never
//! waits on ingestion. Connections are capped, headers bounded and timed out, request
//! bodies never read.

use std::convert::Infallible;
use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{
    HeaderMap, HeaderValue, ACCEPT, ACCEPT_ENCODING, ALLOW, CONTENT_ENCODING, CONTENT_TYPE, VARY,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::auth::{self, Authorizer, Decision};
use super::basic_auth::{BasicAuth, Verdict};
use super::connections::{Admitted, Budget, MAX_CONNECTIONS};
use super::janssen_stat;
use super::metrics::{
    encode_openmetrics, openmetrics_to_prometheus_text, OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE,
};
use super::web_config::WebConfigWatch;
use crate::event::Endpoint;
use crate::store::Published;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Request line and headers must fit here (hyper's minimum is 8 KiB).
const MAX_HEADER_BYTES: usize = 16 * 1024;
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// In-flight requests get this long after a shutdown signal.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

pub struct HttpApp {
    pub registry: Registry,
    pub published: Arc<Published>,
    /// Who may read the Janssen-compatible stat endpoint; `None`: nobody (503).
    pub stat_auth: Option<Arc<dyn Authorizer>>,
    /// A health answer older than this is stale: `status` is then not `running`.
    pub health_stale_after: Duration,
    /// Janssen-compatible requests in flight at most; more get 503.
    pub compat_slots: Semaphore,
    /// Error bodies carry `reason` (`api.error_reason`, upstream's `errorReasonEnabled`).
    pub error_reason: bool,
    /// What the pollers call, for the landing page.
    pub polled: Vec<PolledTarget>,
    /// TLS, basic auth and headers from `--web.config.file`.
    pub web: WebConfigWatch,
    pub basic_auth: BasicAuth,
}

/// One upstream poller as the landing page shows it.
#[derive(Clone, Debug)]
pub struct PolledTarget {
    pub name: &'static str,
    /// Without credentials or query.
    pub url: String,
    pub every: Duration,
}

/// An epoch-ms instant as UTC RFC 3339 with milliseconds, or `none`.
fn utc_or(ms: Option<i64>, none: &str) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(
            || none.to_string(),
            |t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        )
}

/// Text safe inside HTML elements and attribute values.
fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Bodies of Janssen-compatible POSTs (a form of a few parameters) are at most this.
const MAX_FORM_BYTES: usize = 16 * 1024;
/// A form body must arrive within this, or the slot it holds is given back.
const BODY_TIMEOUT: Duration = Duration::from_secs(5);
pub const STAT_PATH: &str = "/jans-auth/restv1/internal/stat";
pub const HEALTH_PATH: &str = "/jans-auth/sys/health-check";

type Body = Full<Bytes>;

fn response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// The q-value a header gives to media types or codings matching `wanted`.
fn quality(
    headers: &HeaderMap,
    name: hyper::header::HeaderName,
    wanted: impl Fn(&str) -> bool,
) -> Option<f32> {
    let mut best: Option<f32> = None;
    for value in headers.get_all(name) {
        let Ok(value) = value.to_str() else { continue };
        for range in value.split(',') {
            let mut parts = range.split(';');
            let item = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            if !wanted(&item) {
                continue;
            }
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            best = Some(best.map_or(q, |b| b.max(q)));
        }
    }
    best
}

/// OpenMetrics when the scraper accepts it at least as much as 0.0.4 text.
pub fn wants_openmetrics(headers: &HeaderMap) -> bool {
    let om = quality(headers, ACCEPT, |t| t == "application/openmetrics-text").unwrap_or(0.0);
    let text = quality(headers, ACCEPT, |t| t == "text/plain").unwrap_or(0.0);
    om > 0.0 && om >= text
}

fn wants_gzip(headers: &HeaderMap) -> bool {
    quality(headers, ACCEPT_ENCODING, |c| c == "gzip" || c == "x-gzip").is_some_and(|q| q > 0.0)
}

fn gzip(body: &[u8]) -> Option<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    enc.write_all(body).ok()?;
    enc.finish().ok()
}

impl HttpApp {
    fn metrics(&self, headers: &HeaderMap) -> Response<Body> {
        let om = encode_openmetrics(&self.registry);
        let (content_type, body) = if wants_openmetrics(headers) {
            (OPENMETRICS_CONTENT_TYPE, om)
        } else {
            (TEXT_CONTENT_TYPE, openmetrics_to_prometheus_text(&om))
        };
        let mut r = match wants_gzip(headers).then(|| gzip(body.as_bytes())).flatten() {
            Some(zipped) => {
                let mut r = response(StatusCode::OK, content_type, zipped);
                r.headers_mut()
                    .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                r
            }
            None => response(StatusCode::OK, content_type, body),
        };
        r.headers_mut()
            .insert(VARY, HeaderValue::from_static("Accept, Accept-Encoding"));
        r
    }

    fn readyz(&self) -> Response<Body> {
        let view = self.published.load();
        let mut problems = Vec::new();
        if !view.ready {
            problems.push("first pass over the log files not finished".to_string());
        }
        if let Some(error) = &view.state.error {
            problems.push(format!("state is not being saved: {error}"));
        }
        if view.tail.over_limit > 0 {
            problems.push(format!(
                "{} matched log files are not followed: the file-descriptor limit is reached",
                view.tail.over_limit
            ));
        }
        if problems.is_empty() {
            response(StatusCode::OK, "text/plain; charset=utf-8", "ready\n")
        } else {
            response(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain; charset=utf-8",
                format!("not ready: {}\n", problems.join("; ")),
            )
        }
    }

    fn landing(&self) -> Response<Body> {
        let version = env!("CARGO_PKG_VERSION");
        let view = self.published.load();
        let audit: u64 = view.counters.audit.iter().flatten().sum();
        let server: u64 = view.counters.server_log_messages.iter().sum();
        let mut page = format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>jans-exporter</title></head>\n<body>\n<h1>jans-exporter {version}</h1>\n<p>Prometheus exporter sidecar for the Janssen auth server.</p>\n"
        );
        // Say plainly what is missing: without the server log there are no login
        // outcomes at all, since a wrong password writes no audit record.
        if server == 0 {
            page.push_str(&format!("<p>Audit log: {audit} records read. <strong>Server log (jans-auth.log): nothing read.</strong> Login outcomes (<code>jans_authentications_total</code>) and the login-failure alert need it: a wrong password writes no audit record. Add it to <code>logs.paths</code>; in the official containers set <code>\"auth_log_target\": \"FILE\"</code> in <code>CN_AUTH_APP_LOGGERS</code>.</p>\n"));
        } else {
            page.push_str(&format!("<p>Audit log: {audit} records read. Server log (jans-auth.log): {server} events read.</p>\n"));
        }
        let last = utc_or(view.counters.last_record_ms, "none yet");
        page.push_str(&format!(
            "<h2>Followed</h2>\n<p>{} files followed; newest record stamped {last}.</p>\n<table>\n<tr><th>logs.paths pattern</th><th>files matched</th></tr>\n",
            view.tail.files
        ));
        for (pattern, n) in &view.tail.matched {
            let warn = if *n == 0 {
                " <strong>(nothing)</strong>"
            } else {
                ""
            };
            page.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{n}{warn}</td></tr>\n",
                html_escape(pattern)
            ));
        }
        page.push_str("</table>\n<h2>Polled</h2>\n");
        if self.polled.is_empty() {
            page.push_str("<p>Nothing: <code>upstream.base_url</code> is not set.</p>\n");
        } else {
            page.push_str("<table>\n<tr><th>poller</th><th>URL</th><th>every</th></tr>\n");
            for p in &self.polled {
                page.push_str(&format!(
                    "<tr><td>{}</td><td><code>{}</code></td><td>{}</td></tr>\n",
                    p.name,
                    html_escape(&p.url),
                    humantime::format_duration(p.every)
                ));
            }
            page.push_str("</table>\n<table>\n<tr><th>endpoint</th><th>last call</th><th>last success</th></tr>\n");
            for (endpoint, stats) in Endpoint::ALL.iter().zip(&view.upstream.calls) {
                if stats.duration.count == 0 {
                    continue;
                }
                let up = match stats.up {
                    Some(true) => "answered",
                    Some(false) => "<strong>failed</strong>",
                    None => "not since start",
                };
                let success = utc_or(stats.last_success_ms, "never");
                page.push_str(&format!(
                    "<tr><td>{}</td><td>{up}</td><td>{success}</td></tr>\n",
                    endpoint.as_str()
                ));
            }
            page.push_str("</table>\n");
            match view.upstream.poller_leader {
                Some(true) if view.cluster.is_some() => page.push_str("<p>This sidecar holds the lease: it polls the cluster-wide endpoints (stat, FIDO2 entries) for every replica.</p>\n"),
                Some(false) => page.push_str("<p>Another replica polls the cluster-wide endpoints (stat, FIDO2 entries); this sidecar's counters of them stay as they are, and it takes over when that one stops.</p>\n"),
                _ => {}
            }
        }
        if let Some(c) = &view.cluster {
            let state = match c.up {
                Some(true) => "synced",
                Some(false) => "<strong>failing</strong>",
                None => "not yet",
            };
            let errors: u64 = c.errors.iter().sum();
            let month = c.current[2].map_or_else(|| "not known yet".to_string(), |n| n.to_string());
            page.push_str(&format!(
                "<h2>Cluster</h2>\n<p>Redis: {state}; last successful sync {}; {errors} failed syncs. Distinct users this month across every replica: {month}.</p>\n",
                utc_or(c.last_sync_ms, "never")
            ));
        }
        if let Some(o) = &view.okta {
            let state = match o.calls.up {
                Some(true) => "answered",
                Some(false) => "<strong>failed</strong>",
                None => "not asked yet",
            };
            let errors: u64 = o.calls.errors.iter().sum();
            page.push_str(&format!(
                "<h2>Okta</h2>\n<p>System Log: last request {state}; last success {}; {errors} failed requests; newest event published {}. Distinct users of user-based flows this month: {}.</p>\n",
                utc_or(o.calls.last_success_ms, "never"),
                utc_or(o.newest_ms, "none yet"),
                o.active[2]
            ));
        }
        page.push_str("<h2>Endpoints</h2>\n<ul>\n<li><a href=\"/metrics\">/metrics</a> (OpenMetrics or Prometheus text)</li>\n<li><a href=\"/healthz\">/healthz</a> (alive)</li>\n<li><a href=\"/readyz\">/readyz</a> (first pass over the logs done, state being saved)</li>\n</ul>\n</body></html>\n");
        response(StatusCode::OK, "text/html; charset=utf-8", page)
    }

    pub fn route(&self, method: &Method, path: &str, headers: &HeaderMap) -> Response<Body> {
        let known = matches!(path, "/" | "/metrics" | "/healthz" | "/readyz");
        if !known {
            return response(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "not found\n",
            );
        }
        if method != Method::GET && method != Method::HEAD {
            let mut r = response(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain; charset=utf-8",
                "method not allowed\n",
            );
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        match path {
            "/metrics" => self.metrics(headers),
            "/healthz" => match self.published.failure() {
                None => response(StatusCode::OK, "text/plain; charset=utf-8", "ok\n"),
                Some(why) => response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain; charset=utf-8",
                    format!("store thread died: {why}\n"),
                ),
            },
            "/readyz" => self.readyz(),
            _ => self.landing(),
        }
    }
}

fn json_answer(status: u16, body: String) -> Response<Body> {
    response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        "application/json",
        body,
    )
}

fn unavailable(why: &str) -> Response<Body> {
    let body = serde_json::json!({"error": "temporarily_unavailable", "error_description": why})
        .to_string();
    json_answer(503, body)
}

/// The token of an `Authorization: Bearer <token>` header: the scheme in any case and
/// the token trimmed, as upstream reads it.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl HttpApp {
    /// `GET|POST /jans-auth/restv1/internal/stat`, checked in upstream's order:
    /// authorization (401), then months (400).
    async fn stat(&self, req: Request<Incoming>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        // Authorization first, from the header alone: an unauthenticated caller never
        // holds a slot or makes the sidecar wait for a body.
        let bearer = parts
            .headers
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token);
        let Some(token) = bearer else {
            let a = janssen_stat::unauthorized(auth::NO_GRANT);
            return json_answer(a.status, a.body(self.error_reason));
        };
        let Some(authorizer) = &self.stat_auth else {
            return unavailable(
                "no way to check tokens is configured (upstream client or api.static_tokens_file)",
            );
        };
        // The permit bounds checks of tokens in flight (introspection calls upstream);
        // it is given back before the body is read, so a caller that is slow to send
        // its body holds nobody else up.
        let decision = {
            let Ok(_permit) = self.compat_slots.try_acquire() else {
                return unavailable("too many requests in flight");
            };
            authorizer.check(token).await
        };
        match decision {
            Decision::Allow => {}
            Decision::Deny(reason) => {
                let a = janssen_stat::unauthorized(&reason);
                return json_answer(a.status, a.body(self.error_reason));
            }
            Decision::Unavailable(why) => return unavailable(&why),
        }
        // A GET reads the query, a POST its form body only, as upstream; a body is read
        // for an authorized caller only, and only for so long.
        let mut params: Vec<(String, String)> = Vec::new();
        if parts.method != Method::POST {
            params.extend(
                form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()).into_owned(),
            );
        } else {
            let read =
                tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_FORM_BYTES).collect());
            match read.await {
                Ok(Ok(bytes)) => {
                    params.extend(form_urlencoded::parse(&bytes.to_bytes()).into_owned())
                }
                Ok(Err(_)) => return json_answer(
                    413,
                    r#"{"error":"invalid_request","error_description":"request body too large"}"#
                        .into(),
                ),
                Err(_) => return json_answer(
                    408,
                    r#"{"error":"invalid_request","error_description":"request body not received in time"}"#
                        .into(),
                ),
            }
        }
        match janssen_stat::parse_query(&params) {
            Ok(query) => {
                let (content_type, body) = janssen_stat::render(&self.published.load(), &query);
                response(StatusCode::OK, content_type, body)
            }
            Err(a) => json_answer(a.status, a.body(self.error_reason)),
        }
    }

    /// `GET|POST /jans-auth/sys/health-check`, from the health poller's last answer.
    fn health_check(&self) -> Response<Body> {
        let view = self.published.load();
        let u = &view.upstream;
        let Some(h) = u.health else {
            return json_answer(
                503,
                r#"{"status": "unknown", "db_status":"unknown"}"#.into(),
            );
        };
        let stale =
            view.at_ms - h.at_ms > self.health_stale_after.as_millis() as i64 || u.health_failed;
        let status = match (stale, h.running, h.starting) {
            (true, _, _) => "unknown",
            (false, true, _) => "running",
            (false, false, true) => "starting",
            _ => "unknown",
        };
        let db = if h.db_online { "online" } else { "offline" };
        json_answer(
            200,
            format!("{{\"status\": \"{status}\", \"db_status\":\"{db}\"}}"),
        )
    }
}

/// Paths outside basic auth: the Janssen-compatible ones keep upstream's own rules
/// (a Bearer token for the stat endpoint, none for the health check), and the probes
/// say only alive or ready, for kubelet and Docker, which cannot send a password.
fn outside_basic_auth(path: &str) -> bool {
    matches!(path, STAT_PATH | HEALTH_PATH | "/healthz" | "/readyz")
}

async fn handle(app: Arc<HttpApp>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let web = app.web.current();
    let mut answer = if !web.users.is_empty() && !outside_basic_auth(req.uri().path()) {
        match app.basic_auth.check(&web.users, req.headers()).await {
            Verdict::Allow => dispatch(app, req).await,
            Verdict::Deny => {
                let mut r = response(
                    StatusCode::UNAUTHORIZED,
                    "text/plain; charset=utf-8",
                    "unauthorized\n",
                );
                r.headers_mut().insert(
                    hyper::header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"jans-exporter\", charset=\"UTF-8\""),
                );
                r
            }
            Verdict::Busy => unavailable("too many password checks in flight"),
        }
    } else {
        dispatch(app, req).await
    };
    for (name, value) in &web.headers {
        answer.headers_mut().insert(name.clone(), value.clone());
    }
    Ok(answer)
}

/// The endpoint for a request that may proceed.
async fn dispatch(app: Arc<HttpApp>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path();
    if path == STAT_PATH || path == HEALTH_PATH {
        if req.method() != Method::GET && req.method() != Method::POST {
            let mut r = response(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain; charset=utf-8",
                "method not allowed\n",
            );
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, POST"));
            return r;
        }
        return if path == STAT_PATH {
            app.stat(req).await
        } else {
            app.health_check()
        };
    }
    app.route(req.method(), req.uri().path(), req.headers())
}

/// Serves one accepted connection until it ends, is evicted, or the server closes
/// (then in-flight requests finish, bounded by [`DRAIN_TIMEOUT`]).
async fn connection<I>(
    io: I,
    builder: hyper::server::conn::http1::Builder,
    app: Arc<HttpApp>,
    admitted: &Admitted,
    closing: &CancellationToken,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let conn = Arc::clone(&admitted.conn);
    let service = hyper::service::service_fn(move |req| {
        let app = Arc::clone(&app);
        let guard = conn.request();
        async move {
            let answer = handle(app, req).await;
            drop(guard);
            answer
        }
    });
    let served = builder.serve_connection(io, service);
    tokio::pin!(served);
    tokio::select! {
        _ = served.as_mut() => return,
        () = admitted.conn.evict.notified() => {}
        () = closing.cancelled() => {}
    }
    // Evicted or closing: an idle connection closes now, a busy one after its answer.
    served.as_mut().graceful_shutdown();
    let _ = served.await;
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish (bounded).
pub async fn serve(listener: TcpListener, app: Arc<HttpApp>, shutdown: impl Future<Output = ()>) {
    let budget = Budget::new(MAX_CONNECTIONS);
    let tasks = TaskTracker::new();
    let closing = CancellationToken::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, _) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // A place in the budget, evicting an idle connection if every place is taken.
        let admitted = tokio::select! {
            admitted = budget.admit() => admitted,
            () = &mut shutdown => break,
        };
        let Some(admitted) = admitted else {
            break;
        };
        let tls = app.web.current().tls.clone();
        let app = Arc::clone(&app);
        let builder = builder.clone();
        let closing = closing.clone();
        tasks.spawn(async move {
            match tls {
                None => connection(TokioIo::new(stream), builder, app, &admitted, &closing).await,
                Some(tls) => {
                    // The handshake is bounded like the headers: a silent client
                    // gives its place back.
                    let handshake = tokio_rustls::TlsAcceptor::from(tls).accept(stream);
                    if let Ok(Ok(stream)) = tokio::time::timeout(HEADER_TIMEOUT, handshake).await {
                        connection(TokioIo::new(stream), builder, app, &admitted, &closing).await;
                    }
                }
            }
            drop(admitted);
        });
    }
    drop(listener);
    closing.cancel();
    tasks.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish in time");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn the_bearer_scheme_in_any_case_and_a_trimmed_token() {
        for (header, want) in [
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("BEARER  abc ", Some("abc")),
            ("Basic abc", None),
            ("Bearer ", None),
            ("Bearerabc", None),
        ] {
            assert_eq!(bearer_token(header), want, "{header}");
        }
    }

    #[test]
    fn negotiates_openmetrics_like_prometheus_asks() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(&headers(&[("accept", prometheus)])));
        assert!(!wants_openmetrics(&headers(&[])));
        assert!(!wants_openmetrics(&headers(&[("accept", "text/plain")])));
        assert!(!wants_openmetrics(&headers(&[(
            "accept",
            "application/openmetrics-text;q=0"
        )])));
        assert!(!wants_openmetrics(&headers(&[(
            "accept",
            "application/openmetrics-text;q=0.2, text/plain"
        )])));
    }

    #[test]
    fn gzip_only_when_asked() {
        assert!(wants_gzip(&headers(&[(
            "accept-encoding",
            "gzip, deflate"
        )])));
        assert!(!wants_gzip(&headers(&[("accept-encoding", "gzip;q=0")])));
        assert!(!wants_gzip(&headers(&[])));
    }
}
