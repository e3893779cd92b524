//! relay: verifies incoming requests like image_store and answers `GET /me`
//! by calling `GET /me` on `UPSTREAM` with identity propagation: the user's
//! token (forwarded, or exchanged) and relay's own service token.
//!
//! ```text
//! cargo run --example relay
//! ```
//!
//! Environment (besides image_store's `BIND`, `USER_*`, `SERVICE_*`,
//! `ALGORITHMS`, `LEEWAY_SECS`): `UPSTREAM` (default `http://127.0.0.1:3000`);
//! relay's identity, self-signed by default (`RELAY_ISSUER`, default
//! `http://<BIND>`; key from `RELAY_SIGNING_KEY`, a PKCS#8 PEM path, or
//! generated; JWKS at `/.well-known/jwks.json`; `aud` = `UPSTREAM_AUDIENCE`,
//! default `image-store`), or client credentials when `TOKEN_URL`,
//! `CLIENT_ID` and `CLIENT_SECRET` are set (with optional `SCOPE`,
//! `RESOURCE`); `PROPAGATION=forward|exchange` (exchange: RFC 8693 at
//! `TOKEN_URL`, audience `EXCHANGE_AUDIENCE`); `ALLOWED_HOSTS` (comma list of
//! `host` or `host:port` that may receive tokens, default the upstream's;
//! plain http only for loopback hosts). `MANDATE_CONFIG`, a TOML file of
//! `tower_mandate::config::MandateConfig`, replaces the slot variables, and
//! the outgoing ones too when it has a `[propagate]` table (its providers
//! from `[providers]`).

#[path = "image_store/app.rs"]
mod app;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use reqwest_middleware::ClientWithMiddleware;
use tower_mandate::keys::Algorithm;
use tower_mandate::mint::SigningKey;
use tower_mandate::propagate::{Destination, PropagateLayer, PropagateMiddleware, redirect_policy};
use tower_mandate::provider::{
    ClientAuth, ClientCredentials, SelfSigned, TokenExchange, TokenRequest,
};

type BoxError = Box<dyn std::error::Error>;

#[derive(Clone)]
struct Relay {
    client: ClientWithMiddleware,
    upstream: String,
}

async fn me(State(relay): State<Relay>) -> impl IntoResponse {
    let url = format!("{}/me", relay.upstream.trim_end_matches('/'));
    match relay.client.get(url).send().await {
        Ok(res) => {
            let status =
                StatusCode::from_u16(res.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let body = res.bytes().await.unwrap_or_default();
            (
                status,
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "upstream call failed");
            (StatusCode::BAD_GATEWAY, "upstream call failed").into_response()
        }
    }
}

/// A destination for `url` (`scheme://host[:port]`); plain http for loopback only.
fn destination(url: &str) -> Result<Destination, BoxError> {
    let uri: http::Uri = url.parse()?;
    let host = uri.host().ok_or("a URL without host")?.to_owned();
    match uri.scheme_str() {
        Some("https") => Ok(Destination::https(host).with_port(uri.port_u16().unwrap_or(443))),
        Some("http") if app::is_loopback(url) => Ok(Destination::insecure_http(
            host,
            uri.port_u16().unwrap_or(80),
        )),
        _ => Err(format!("{url}: https only (plain http for loopback hosts)").into()),
    }
}

fn signing_key() -> Result<SigningKey, BoxError> {
    let Some(path) = app::env("RELAY_SIGNING_KEY") else {
        return Ok(SigningKey::generate(Algorithm::ES256, "relay-1"));
    };
    let pem = std::fs::read_to_string(&path)?;
    [
        Algorithm::ES256,
        Algorithm::EdDSA,
        Algorithm::ES384,
        Algorithm::RS256,
    ]
    .into_iter()
    .find_map(|alg| SigningKey::from_pkcs8_pem(alg, "relay-1", &pem).ok())
    .ok_or_else(|| format!("{path}: not a PKCS#8 EC, Ed25519 or RSA private key").into())
}

/// Relay's outgoing identity and propagation from the environment; the
/// JWKS route of its self-signed identity goes on `router`.
fn policy_from_env(
    bind: &str,
    upstream: &str,
    router: &mut Router,
) -> Result<PropagateLayer, BoxError> {
    let upstream_audience = app::env("UPSTREAM_AUDIENCE").unwrap_or_else(|| "image-store".into());
    let token_url = app::env("TOKEN_URL");
    let client_auth = || -> Result<(String, ClientAuth), BoxError> {
        let id = app::env("CLIENT_ID").ok_or("CLIENT_ID is required with TOKEN_URL")?;
        let secret = app::env("CLIENT_SECRET").ok_or("CLIENT_SECRET is required with TOKEN_URL")?;
        Ok((id, ClientAuth::SecretBasic(secret)))
    };
    let loopback_ok = |url: &str| app::is_loopback(url);

    let mut upstream_dest = destination(upstream)?;
    // Relay's own token.
    match &token_url {
        Some(url) if app::env("CLIENT_ID").is_some() => {
            let (id, auth) = client_auth()?;
            let mut provider = ClientCredentials::builder(url.clone(), id, auth);
            if loopback_ok(url) {
                provider = provider.insecure_allow_http();
            }
            let provider = provider.build();
            let mut request = TokenRequest::default();
            request.scope = app::env("SCOPE");
            request.resource = app::env("RESOURCE");
            upstream_dest = upstream_dest.with_service_token(provider, request);
        }
        _ => {
            let issuer = app::env("RELAY_ISSUER").unwrap_or_else(|| format!("http://{bind}"));
            let identity = SelfSigned::new(issuer.clone(), signing_key()?)?;
            *router = std::mem::take(router).route("/.well-known/jwks.json", identity.jwks_route());
            upstream_dest = upstream_dest.with_service_token(
                identity,
                TokenRequest::for_audience(upstream_audience.clone()),
            );
            println!("relay signs its own tokens as {issuer}");
        }
    }
    // The user's token.
    match app::env("PROPAGATION").as_deref() {
        None | Some("forward") => upstream_dest = upstream_dest.forward_user_token(),
        Some("exchange") => {
            let url = token_url
                .clone()
                .ok_or("PROPAGATION=exchange needs TOKEN_URL")?;
            let (id, auth) = client_auth()?;
            let mut exchange = TokenExchange::builder(url.clone(), id, auth);
            if loopback_ok(&url) {
                exchange = exchange.insecure_allow_http();
            }
            let exchange = exchange.build();
            let audience =
                app::env("EXCHANGE_AUDIENCE").unwrap_or_else(|| upstream_audience.clone());
            upstream_dest =
                upstream_dest.exchange_user_token(exchange, TokenRequest::for_audience(audience));
        }
        Some(other) => {
            return Err(format!("PROPAGATION must be forward or exchange, not {other:?}").into());
        }
    }
    // Only listed hosts receive tokens; by default, the upstream's.
    let upstream_uri: http::Uri = upstream.parse()?;
    let host = upstream_uri.host().unwrap_or_default();
    let host_port = upstream_uri
        .port_u16()
        .map_or_else(|| host.to_owned(), |p| format!("{host}:{p}"));
    let allowed = app::env("ALLOWED_HOSTS").is_none_or(|list| {
        list.split(',')
            .map(str::trim)
            .any(|h| h.eq_ignore_ascii_case(host) || h.eq_ignore_ascii_case(&host_port))
    });
    Ok(if allowed {
        PropagateLayer::builder()
            .add_destination(upstream_dest)
            .build()
    } else {
        tracing::warn!(%host_port, "the upstream is not in ALLOWED_HOSTS: no token will be sent to it");
        PropagateLayer::new()
    })
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let settings = app::Settings::from_env()?;
    let config = app::config_file();
    let (layer, embedded) = match &config {
        Some(c) => match c.layer() {
            Ok(layer) => (layer, None),
            Err(e) => app::exit_with(&app::env("MANDATE_CONFIG").unwrap_or_default(), &e),
        },
        None => app::layer_from_env(&settings)?,
    };
    let listener = tokio::net::TcpListener::bind(&settings.bind).await?;
    let bind = listener.local_addr()?.to_string();

    let upstream = app::env("UPSTREAM").unwrap_or_else(|| "http://127.0.0.1:3000".into());
    let mut router = Router::new();
    // With MANDATE_CONFIG, [propagate] and [providers] replace the variables.
    let policy = match config.as_ref().filter(|c| c.propagate.is_some()) {
        Some(c) => {
            let path = app::env("MANDATE_CONFIG").unwrap_or_default();
            let providers = c.providers().unwrap_or_else(|e| app::exit_with(&path, &e));
            c.propagate_layer(&providers)
                .unwrap_or_else(|e| app::exit_with(&path, &e))
        }
        None => policy_from_env(&bind, &upstream, &mut router)?,
    };
    let client = reqwest_middleware::ClientBuilder::new(
        reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            // Redirects stay on the destination the tokens were attached for.
            .redirect(redirect_policy())
            .build()?,
    )
    .with(PropagateMiddleware::new(&policy))
    .build();

    if embedded.is_some() {
        println!("embedded issuers (USER_ISSUER unset): see image_store for tokens");
    }
    let app = router
        .merge(
            Router::new()
                .route("/me", get(me))
                .route_layer(layer)
                .with_state(Relay {
                    client,
                    upstream: upstream.clone(),
                }),
        )
        .route("/healthz", get(|| async { "ok" }));
    println!("relay → {upstream}");
    println!("relay listening on http://{bind}");
    axum::serve(listener, app).await?;
    Ok(())
}
