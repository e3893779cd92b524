//! The server driven by the load bench (`benches/load.sh`): one process,
//! several routes that differ only in how they authenticate.
//!
//! | route | authentication |
//! |---|---|
//! | `/noauth` | none |
//! | `/noop-layer` | none, but a no-op `route_layer` (what any layer costs in axum) |
//! | `/naive` | a naive layer calling `jsonwebtoken::decode` on every request |
//! | `/one` | `MandateLayer`, user slot, verified-token cache on |
//! | `/one-uncached` | the same, cache off |
//! | `/two` | user and service slots, cache on |
//! | `/two-uncached` | the same, cache off |
//! | `/jwks` | user slot with keys from a JWKS endpoint, cache off |
//! | `/mixed` | the same with the cache on, counting statuses per `?class=` |
//! | `/stats` | those counts and the valid class's server-side p50/p99 |
//! | `/dpop` | user slot taking DPoP (RFC 9449), cache on; `$LOAD_DIR/dpop.token` is bound to the server's own key |
//! | `POST /dpop/proofs/{n}` | writes `n` fresh ES256 proofs for `GET /dpop`, one per line, to `$LOAD_DIR/dpop.proofs` |
//! | `POST /metrics/{on,off}` | metrics to a Prometheus recorder, or to none (off, the default) |
//! | `POST /spans/{on,off}` | the layer's request span recorded by a `tracing` registry, or not made (off, the default) |
//! | `/authzen` | `/one`, then the AuthZEN decision point at `$AUTHZEN_URL` (a Cerbos started by load.sh) asked whether the user reads her image |
//! | `/authzen-cached` | the same with the decision cache on |
//!
//! The JWKS endpoint is served by this process too, on another port, with
//! `Cache-Control: max-age=1` so that keys are refreshed every second;
//! `POST /jwks-mode/{normal|hang|down|stopped}` changes how it answers
//! (`stopped` closes its listener; any other mode opens it again).
//!
//! Writes the tokens to `$LOAD_DIR/{user,service}.token` and prints
//! `listening on http://ADDR` when ready.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jsonwebtoken::{DecodingKey, Validation};
use tower_mandate::policy::{AuthZen, Resource};
use tower_mandate::testing::TestIssuer;
use tower_mandate::{Caller, Issuer, MandateLayer, Slot, Verifier, keys::JwksSource};

const AUD: &str = "image-store";

#[derive(Clone)]
struct Naive {
    key: Arc<DecodingKey>,
    validation: Arc<Validation>,
}

/// What a team writes on a first try: decode every token, every time.
async fn naive(State(naive): State<Naive>, req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match token.map(|t| jsonwebtoken::decode::<serde_json::Value>(t, &naive.key, &naive.validation))
    {
        Some(Ok(_)) => next.run(req).await,
        _ => StatusCode::UNAUTHORIZED.into_response(),
    }
}

/// Whether the decision point lets the caller read her own image.
async fn ask(pdp: AuthZen, caller: Caller) -> StatusCode {
    let Some(owner) = caller.user().map(|u| u.id()) else {
        return StatusCode::UNAUTHORIZED;
    };
    let image = Resource::new("Image", "img-1").with_owner(&owner);
    let decision = pdp.authorize(&caller, "images:read", &image).await;
    match decision.require("images:read") {
        Ok(()) => StatusCode::OK,
        Err(e) => e.status(),
    }
}

async fn ok() -> &'static str {
    "ok"
}

/// Status counts per token class (the `class` query parameter), and the
/// latencies of the valid class, for benches/faults.sh.
#[derive(Clone, Default)]
struct Stats(Arc<std::sync::Mutex<StatsInner>>);

#[derive(Default)]
struct StatsInner {
    counts: std::collections::BTreeMap<(String, u16), u64>,
    valid_micros: Vec<u32>,
}

async fn count(State(stats): State<Stats>, req: Request, next: Next) -> Response {
    let class = req
        .uri()
        .query()
        .and_then(|q| q.strip_prefix("class="))
        .unwrap_or("none")
        .to_owned();
    let started = std::time::Instant::now();
    let res = next.run(req).await;
    let micros = started.elapsed().as_micros().min(u32::MAX as u128) as u32;
    let mut s = stats.0.lock().unwrap();
    *s.counts
        .entry((class.clone(), res.status().as_u16()))
        .or_default() += 1;
    if class == "valid" {
        s.valid_micros.push(micros);
    }
    res
}

async fn report(State(stats): State<Stats>, uri: axum::http::Uri) -> axum::Json<serde_json::Value> {
    let mut s = stats.0.lock().unwrap();
    if uri.query() == Some("reset") {
        *s = StatsInner::default();
    }
    let counts: Vec<_> = s
        .counts
        .iter()
        .map(|((class, status), n)| serde_json::json!({"class": class, "status": status, "count": n}))
        .collect();
    s.valid_micros.sort_unstable();
    let p = |q: f64| {
        let v = &s.valid_micros;
        if v.is_empty() {
            0
        } else {
            v[((v.len() - 1) as f64 * q) as usize]
        }
    };
    axum::Json(serde_json::json!({
        "counts": counts,
        "valid_p50_us": p(0.50),
        "valid_p99_us": p(0.99),
        "valid_samples": s.valid_micros.len(),
    }))
}

/// A recorder that can be switched on and off while the server runs, so
/// that the load bench measures the same process with metrics and without:
/// off, every metric is the facade's no-op.
struct Switch {
    on: std::sync::atomic::AtomicBool,
    inner: metrics_exporter_prometheus::PrometheusRecorder,
}

impl metrics::Recorder for Switch {
    fn describe_counter(
        &self,
        k: metrics::KeyName,
        u: Option<metrics::Unit>,
        d: metrics::SharedString,
    ) {
        self.inner.describe_counter(k, u, d);
    }
    fn describe_gauge(
        &self,
        k: metrics::KeyName,
        u: Option<metrics::Unit>,
        d: metrics::SharedString,
    ) {
        self.inner.describe_gauge(k, u, d);
    }
    fn describe_histogram(
        &self,
        k: metrics::KeyName,
        u: Option<metrics::Unit>,
        d: metrics::SharedString,
    ) {
        self.inner.describe_histogram(k, u, d);
    }
    fn register_counter(&self, k: &metrics::Key, m: &metrics::Metadata<'_>) -> metrics::Counter {
        if self.on.load(Ordering::Relaxed) {
            self.inner.register_counter(k, m)
        } else {
            metrics::Counter::noop()
        }
    }
    fn register_gauge(&self, k: &metrics::Key, m: &metrics::Metadata<'_>) -> metrics::Gauge {
        if self.on.load(Ordering::Relaxed) {
            self.inner.register_gauge(k, m)
        } else {
            metrics::Gauge::noop()
        }
    }
    fn register_histogram(
        &self,
        k: &metrics::Key,
        m: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        if self.on.load(Ordering::Relaxed) {
            self.inner.register_histogram(k, m)
        } else {
            metrics::Histogram::noop()
        }
    }
}

/// Spans switched on and off while the server runs: a `tracing` registry
/// (which stores every span it is given) behind a filter that lets the
/// layer's request span (`tower_mandate::server`, INFO) through while on.
/// Events stay off either way.
struct Spans(&'static std::sync::atomic::AtomicBool);

impl<S: tracing::Subscriber> tracing_subscriber::layer::Filter<S> for Spans {
    fn enabled(
        &self,
        meta: &tracing::Metadata<'_>,
        _: &tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        meta.is_span() && meta.target() == "tower_mandate::server" && self.0.load(Ordering::Relaxed)
    }

    fn callsite_enabled(
        &self,
        meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if meta.is_span() && meta.target() == "tower_mandate::server" {
            // Asked again on every use: the switch may flip.
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::never()
        }
    }
}

/// A layer that records the span's fields, as an exporter would.
struct Recording;

impl<S> tracing_subscriber::Layer<S> for Recording
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_record(
        &self,
        _: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        struct Count(usize);
        impl tracing::field::Visit for Count {
            fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {
                self.0 += 1;
            }
        }
        values.record(&mut Count(0));
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let spans: &'static std::sync::atomic::AtomicBool =
        Box::leak(Box::new(std::sync::atomic::AtomicBool::new(false)));
    {
        use tracing_subscriber::Layer as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        let subscriber = tracing_subscriber::registry().with(Recording.with_filter(Spans(spans)));
        tracing::subscriber::set_global_default(subscriber)?;
    }
    let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
        &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
    );
    let users = TestIssuer::rs256("https://users.example").with_audience(AUD);
    let services = TestIssuer::rs256("https://services.example").with_audience(AUD);
    let day = Duration::from_secs(24 * 3600);
    let user_token = users
        .token("alice")
        .scope("images:read")
        .expires_in(day)
        .sign();
    let service_token = services
        .token("svc")
        .scope("images:read")
        .expires_in(day)
        .sign();
    let switch: &'static Switch = Box::leak(Box::new(Switch {
        on: std::sync::atomic::AtomicBool::new(false),
        inner: metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder(),
    }));
    metrics::set_global_recorder(switch)?;
    let dir = std::env::var("LOAD_DIR").unwrap_or_else(|_| ".".into());
    std::fs::write(format!("{dir}/user.token"), &user_token)?;
    std::fs::write(format!("{dir}/service.token"), &service_token)?;

    // The JWKS endpoint, with a switch for outages.
    let mode = Arc::new(AtomicU8::new(0));
    let jwks_doc = users.jwks();
    let jwks_mode = mode.clone();
    let jwks_app = Router::new().route(
        "/jwks",
        get(move || {
            let mode = jwks_mode.load(Ordering::Relaxed);
            let doc = jwks_doc.clone();
            async move {
                match mode {
                    1 => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        StatusCode::GATEWAY_TIMEOUT.into_response()
                    }
                    2 => StatusCode::SERVICE_UNAVAILABLE.into_response(),
                    _ => ([(header::CACHE_CONTROL, "max-age=1")], doc).into_response(),
                }
            }
        }),
    );
    let jwks_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let jwks_addr = jwks_listener.local_addr()?;
    let jwks_url = format!("http://{jwks_addr}/jwks");
    // The JWKS server can be stopped (connections refused) and started again.
    let jwks_task = Arc::new(std::sync::Mutex::new(Some(tokio::spawn({
        let app = jwks_app.clone();
        async move {
            let _ = axum::serve(jwks_listener, app).await;
        }
    }))));

    let rules = |idp: &TestIssuer| Issuer::new(idp.issuer(), AUD).with_keys(idp.key_set());
    let user = Verifier::new([rules(&users)])?;
    let service = Verifier::new([rules(&services)])?;
    let uncached = |idp: &TestIssuer| Verifier::builder([rules(idp)]).without_cache().build();
    let both = |user: Verifier, service: Verifier| {
        MandateLayer::builder()
            .user(Slot::required(user))
            .service(Slot::required(service))
            .build()
    };
    let source = JwksSource::builder(jwks_url)
        .insecure_allow_http()
        .with_refresh_bounds(
            Duration::from_secs(1),
            Duration::from_secs(60),
            Duration::from_secs(1),
        )
        .with_cooldown(Duration::from_secs(1))
        .build()?;
    source.refresh().await?;
    let remote_cached =
        Verifier::new([Issuer::new(users.issuer(), AUD).with_jwks(source.clone())])?;
    let remote = Verifier::builder([Issuer::new(users.issuer(), AUD).with_jwks(source)])
        .without_cache()
        .build()?;

    // Tokens for the faults-under-load run (benches/faults.sh), one per line.
    let forger =
        tower_mandate::mint::SigningKey::generate(tower_mandate::keys::Algorithm::RS256, "key-1");
    let mixed = [
        ("valid", vec![user_token.clone()]),
        (
            "expired",
            vec![
                users
                    .token("alice")
                    .expired_for(Duration::from_secs(3600))
                    .sign(),
            ],
        ),
        ("forged", vec![users.token("mallory").sign_with(&forger)]),
        (
            "unknown_kid",
            (0..1000)
                .map(|i| {
                    users
                        .token("mallory")
                        .expires_in(day)
                        .header("kid", serde_json::json!(format!("random-{i}")))
                        .sign()
                })
                .collect(),
        ),
    ];
    for (class, tokens) in &mixed {
        std::fs::write(format!("{dir}/{class}.tokens"), tokens.join("\n") + "\n")?;
    }
    let stats = Stats::default();

    let jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(users.current_key().jwk().ok_or("no public key")?)?;
    let mut validation = Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&[users.issuer()]);
    validation.set_audience(&[AUD]);
    let naive_state = Naive {
        key: Arc::new(DecodingKey::from_jwk(&jwk)?),
        validation: Arc::new(validation),
    };

    // Each scenario is one route; the layer sits on the route's method
    // router, as `route_layer` would put it.
    let app = Router::new()
        .route("/noauth", get(ok))
        // The cost of any route_layer in axum (boxing, a clone per call).
        .route(
            "/noop-layer",
            get(ok).route_layer(tower::util::MapRequestLayer::new(|r: Request| r)),
        )
        .route(
            "/naive",
            get(ok).route_layer(middleware::from_fn_with_state(naive_state, naive)),
        )
        .route("/one", get(ok).route_layer(MandateLayer::new(user.clone())))
        .route(
            "/one-uncached",
            get(ok).route_layer(MandateLayer::new(uncached(&users)?)),
        )
        .route(
            "/two",
            get(ok).route_layer(both(user.clone(), service.clone())?),
        )
        .route(
            "/two-uncached",
            get(ok).route_layer(both(uncached(&users)?, uncached(&services)?)?),
        )
        .route("/jwks", get(ok).route_layer(MandateLayer::new(remote)))
        .route(
            "/mixed",
            get(ok)
                .route_layer(MandateLayer::new(remote_cached))
                .route_layer(middleware::from_fn_with_state(stats.clone(), count)),
        )
        .route("/stats", get(report).with_state(stats))
        .route(
            "/metrics/{mode}",
            post(move |Path(m): Path<String>| async move {
                switch.on.store(m == "on", Ordering::Relaxed);
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/spans/{mode}",
            post(move |Path(m): Path<String>| async move {
                spans.store(m == "on", Ordering::Relaxed);
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/jwks-mode/{mode}",
            post(move |Path(m): Path<String>| {
                let jwks_task = jwks_task.clone();
                let jwks_app = jwks_app.clone();
                let mode = mode.clone();
                async move {
                    let value = match m.as_str() {
                        "hang" => 1,
                        "down" => 2,
                        _ => 0,
                    };
                    mode.store(value, Ordering::Relaxed);
                    let running = jwks_task.lock().unwrap().take();
                    if m == "stopped" {
                        if let Some(task) = running {
                            task.abort();
                        }
                    } else if let Some(task) = running {
                        *jwks_task.lock().unwrap() = Some(task);
                    } else if let Ok(listener) = tokio::net::TcpListener::bind(jwks_addr).await {
                        *jwks_task.lock().unwrap() = Some(tokio::spawn(async move {
                            let _ = axum::serve(listener, jwks_app).await;
                        }));
                    }
                    StatusCode::NO_CONTENT
                }
            }),
        )
        .with_state(());
    // DPoP: proofs are checked against the address this server is bound to.
    let listener = tokio::net::TcpListener::bind(
        std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:0".into()),
    )
    .await?;
    let origin = format!("http://{}", listener.local_addr()?);
    let key = tower_mandate::binding::DpopKey::generate();
    let bound = users
        .token("alice")
        .scope("images:read")
        .expires_in(day)
        .claim("cnf", serde_json::json!({"jkt": key.thumbprint()}))
        .sign();
    std::fs::write(format!("{dir}/dpop.token"), &bound)?;
    let dpop = tower_mandate::binding::Dpop::allowed()
        .with_origin(&origin)
        // Proofs are signed before a run and used during it.
        .with_max_age(Duration::from_secs(600));
    let dpop_layer = MandateLayer::builder()
        .user(tower_mandate::Slot::required(user.clone()).with_dpop(dpop))
        .build()?;
    let uri: http::Uri = format!("{origin}/dpop").parse()?;
    let app = app.route("/dpop", get(ok).route_layer(dpop_layer)).route(
        "/dpop/proofs/{n}",
        post(move |axum::extract::Path(n): axum::extract::Path<usize>| {
            let (key, uri, bound, dir) = (key.clone(), uri.clone(), bound.clone(), dir.clone());
            async move {
                let proofs: Result<Vec<String>, _> = (0..n.min(1_000_000))
                    .map(|_| key.proof(&http::Method::GET, &uri, Some(&bound), None))
                    .collect();
                match proofs
                    .map(|p| std::fs::write(format!("{dir}/dpop.proofs"), p.join("\n") + "\n"))
                {
                    Ok(Ok(())) => StatusCode::NO_CONTENT,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                }
            }
        }),
    );
    // An external decision point, when load.sh started one.
    let app = match std::env::var("AUTHZEN_URL") {
        Ok(url) if !url.is_empty() => {
            let asked = AuthZen::builder(&url).insecure_allow_http().build()?;
            let cached = AuthZen::builder(&url)
                .insecure_allow_http()
                .with_cache(Duration::from_secs(600), 10_000)
                .build()?;
            app.route(
                "/authzen",
                get(move |caller: Caller| ask(asked.clone(), caller))
                    .route_layer(MandateLayer::new(user.clone())),
            )
            .route(
                "/authzen-cached",
                get(move |caller: Caller| ask(cached.clone(), caller))
                    .route_layer(MandateLayer::new(user.clone())),
            )
        }
        _ => app,
    };
    println!("listening on {origin}");
    axum::serve(listener, app).await?;
    Ok(())
}
