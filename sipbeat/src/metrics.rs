//! The HTTP endpoint of `sipbeat run` (Beats' `http.*` keys): `/metrics` in
//! the Prometheus text format, `/healthz` and `/readyz`.
//!
//! It never touches the per-packet path: workers already publish snapshots
//! of their counters every half second, the control loop renders them into
//! an [`Endpoint`] once a second, and the server only copies that text out.
//! Owns the exposition format ([`Exposition`]) and the server; knows
//! nothing of what the counters mean.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;

use serde::Deserialize;

#[cfg(feature = "xdp")]
pub use server::{Endpoint, serve};

/// The `http:` block: where the endpoint listens, off by default.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub enabled: bool,
    pub host: String,
    pub port: u16,
}

impl Default for HttpConfig {
    /// Beats' defaults: localhost, port 5066.
    fn default() -> Self {
        HttpConfig {
            enabled: false,
            host: "localhost".into(),
            port: 5066,
        }
    }
}

impl HttpConfig {
    /// `HOST:PORT` from the command line (enables the endpoint).
    pub fn parse_flag(text: &str) -> Result<HttpConfig, String> {
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| format!("{text:?} is not HOST:PORT"))?;
        let port = port
            .parse()
            .map_err(|_| format!("{port:?} in {text:?} is not a port"))?;
        Ok(HttpConfig {
            enabled: true,
            host: host.trim_matches(['[', ']']).to_string(),
            port,
        })
    }

    /// The addresses `host` names, with `port`.
    pub fn addresses(&self) -> Result<Vec<SocketAddr>, String> {
        use std::net::ToSocketAddrs;
        let host = if self.host == "localhost" {
            "127.0.0.1"
        } else {
            &self.host
        };
        (host, self.port)
            .to_socket_addrs()
            .map(Iterator::collect)
            .map_err(|e| format!("http: cannot resolve {}: {e}", self.host))
    }
}

/// One metric family: its help text, its type (`counter`, `gauge` or
/// `histogram`) and its samples (name suffix, labels, value).
type Family = (
    &'static str,
    &'static str,
    Vec<(&'static str, String, String)>,
);

/// Metric families being written, by name.
#[derive(Default)]
pub struct Exposition {
    families: BTreeMap<String, Family>,
}

/// A histogram's observations: a count per bucket of upper bounds
/// (seconds), and their sum (seconds); [`Exposition::histogram`] writes
/// them cumulative, as Prometheus wants.
pub struct HistogramSamples<'a> {
    pub bounds: &'a [f64],
    /// Observations per bucket, not cumulative; one more than `bounds`
    /// (the last is above every bound).
    pub buckets: &'a [u64],
    pub sum_seconds: f64,
}

impl Exposition {
    /// One sample of the counter `sipbeat_<name>_total`.
    pub fn counter(&mut self, name: &str, help: &'static str, labels: &[(&str, &str)], value: u64) {
        self.sample(
            format!("sipbeat_{name}_total"),
            ("counter", help),
            "",
            labels,
            value.to_string(),
        );
    }

    /// One sample of the gauge `sipbeat_<name>`.
    pub fn gauge(&mut self, name: &str, help: &'static str, labels: &[(&str, &str)], value: u64) {
        self.sample(
            format!("sipbeat_{name}"),
            ("gauge", help),
            "",
            labels,
            value.to_string(),
        );
    }

    /// The histogram `sipbeat_<name>_seconds` with `labels`.
    pub fn histogram(
        &mut self,
        name: &str,
        help: &'static str,
        labels: &[(&str, &str)],
        samples: &HistogramSamples<'_>,
    ) {
        let family = format!("sipbeat_{name}_seconds");
        let kind = ("histogram", help);
        let mut cumulative = 0;
        for (index, count) in samples.buckets.iter().enumerate() {
            cumulative += count;
            let le = samples
                .bounds
                .get(index)
                .map_or("+Inf".to_string(), |b| b.to_string());
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(
                family.clone(),
                kind,
                "_bucket",
                &with_le,
                cumulative.to_string(),
            );
        }
        self.sample(
            family.clone(),
            kind,
            "_sum",
            labels,
            samples.sum_seconds.to_string(),
        );
        self.sample(family, kind, "_count", labels, cumulative.to_string());
    }

    fn sample(
        &mut self,
        name: String,
        (kind, help): (&'static str, &'static str),
        suffix: &'static str,
        labels: &[(&str, &str)],
        value: String,
    ) {
        let family = self
            .families
            .entry(name)
            .or_insert((help, kind, Vec::new()));
        let labels: Vec<String> = labels
            .iter()
            .map(|(key, value)| format!("{key}=\"{}\"", escape_label(value)))
            .collect();
        family.2.push((suffix, labels.join(","), value));
    }

    /// The text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, (help, kind, samples)) in &self.families {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (suffix, labels, value) in samples {
                if labels.is_empty() {
                    let _ = writeln!(out, "{name}{suffix} {value}");
                } else {
                    let _ = writeln!(out, "{name}{suffix}{{{labels}}} {value}");
                }
            }
        }
        out
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The server (hyper on the control plane's tokio runtime).
#[cfg(feature = "xdp")]
mod server {
    use std::sync::Mutex;

    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper::{Request, Response, StatusCode};

    /// What the server answers with, updated by the control loop.
    pub struct Endpoint {
        state: Mutex<State>,
    }

    struct State {
        metrics: String,
        /// Why the process is not healthy, or not ready; `None` when it is.
        unhealthy: Option<String>,
        unready: Option<String>,
    }

    impl Default for Endpoint {
        fn default() -> Self {
            Endpoint {
                state: Mutex::new(State {
                    metrics: String::new(),
                    unhealthy: Some("starting".into()),
                    unready: Some("starting".into()),
                }),
            }
        }
    }

    impl Endpoint {
        /// Replaces the exposition and the two states, each `Ok` or the
        /// reason it is not.
        pub fn update(
            &self,
            metrics: String,
            healthy: Result<(), String>,
            ready: Result<(), String>,
        ) {
            let mut state = self.state.lock().expect("not poisoned");
            state.metrics = metrics;
            state.unhealthy = healthy.err();
            state.unready = ready.err();
        }

        pub(crate) fn respond(&self, path: &str) -> Response<Full<Bytes>> {
            let state = self.state.lock().expect("not poisoned");
            let (status, body, content_type) = match path {
                "/metrics" => (
                    StatusCode::OK,
                    state.metrics.clone(),
                    "text/plain; version=0.0.4; charset=utf-8",
                ),
                "/healthz" | "/readyz" => {
                    let problem = if path == "/healthz" {
                        &state.unhealthy
                    } else {
                        &state.unready
                    };
                    match problem {
                        None => (StatusCode::OK, "ok\n".to_string(), "text/plain"),
                        Some(reason) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("{reason}\n"),
                            "text/plain",
                        ),
                    }
                }
                _ => (
                    StatusCode::NOT_FOUND,
                    "not found\n".to_string(),
                    "text/plain",
                ),
            };
            let mut response = Response::new(Full::new(Bytes::from(body)));
            *response.status_mut() = status;
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(content_type),
            );
            response
        }
    }

    /// Serves `endpoint` on `listener` until the runtime stops.
    pub async fn serve(listener: tokio::net::TcpListener, endpoint: std::sync::Arc<Endpoint>) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let endpoint = std::sync::Arc::clone(&endpoint);
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                        let response = endpoint.respond(request.uri().path());
                        async move { Ok::<_, std::convert::Infallible>(response) }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_grouped_with_help_and_type() {
        let mut e = Exposition::default();
        e.counter(
            "events",
            "Events handed to the output.",
            &[("queue", "0")],
            3,
        );
        e.counter(
            "events",
            "Events handed to the output.",
            &[("queue", "1")],
            4,
        );
        e.counter("frames", "Frames.", &[], 9);
        e.gauge("up", "Up.", &[], 1);
        assert_eq!(
            e.render(),
            "# HELP sipbeat_events_total Events handed to the output.\n# TYPE sipbeat_events_total counter\nsipbeat_events_total{queue=\"0\"} 3\nsipbeat_events_total{queue=\"1\"} 4\n# HELP sipbeat_frames_total Frames.\n# TYPE sipbeat_frames_total counter\nsipbeat_frames_total 9\n# HELP sipbeat_up Up.\n# TYPE sipbeat_up gauge\nsipbeat_up 1\n"
        );
    }

    /// The text of a response body that is already complete.
    #[cfg(feature = "xdp")]
    fn futures_body(body: http_body_util::Full<hyper::body::Bytes>) -> String {
        use hyper::body::Body as _;
        let mut body = std::pin::pin!(body);
        let waker = std::task::Waker::noop();
        let mut context = std::task::Context::from_waker(waker);
        match body.as_mut().poll_frame(&mut context) {
            std::task::Poll::Ready(Some(Ok(frame))) => {
                String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap()
            }
            _ => String::new(),
        }
    }

    #[cfg(feature = "xdp")]
    #[test]
    fn health_and_readiness_answer_503_until_set() {
        let endpoint = Endpoint::default();
        let status = |path: &str| endpoint.respond(path).status().as_u16();
        assert_eq!((status("/healthz"), status("/readyz")), (503, 503));
        endpoint.update("x 1\n".into(), Ok(()), Err("kafka: no broker".into()));
        assert_eq!((status("/healthz"), status("/readyz")), (200, 503));
        let body = endpoint.respond("/readyz").into_body();
        let text = futures_body(body);
        assert_eq!(text, "kafka: no broker\n");
        endpoint.update("x 1\n".into(), Ok(()), Ok(()));
        assert_eq!(
            (status("/readyz"), status("/metrics"), status("/")),
            (200, 200, 404)
        );
    }

    #[test]
    fn flags_and_labels() {
        let http = HttpConfig::parse_flag("127.0.0.1:9100").unwrap();
        assert!(http.enabled);
        assert_eq!((http.host.as_str(), http.port), ("127.0.0.1", 9100));
        assert_eq!(HttpConfig::parse_flag("[::1]:80").unwrap().host, "::1");
        assert!(HttpConfig::parse_flag("nohost").is_err());
        assert!(HttpConfig::parse_flag("h:99999").is_err());
        assert_eq!(escape_label("a\"b\\c"), "a\\\"b\\\\c");
    }
}
