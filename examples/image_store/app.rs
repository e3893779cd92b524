//! The image_store service: routes, permissions, and configuration from the
//! environment. Shared by the `image_store` and `demo` examples, which use
//! different parts of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{Value, json};
use tower_mandate::policy::{AuthZen, Resource};
use tower_mandate::testing::TestIssuer;
use tower_mandate::{
    AuthError, Caller, Issuer, MandateLayer, Principal, PrincipalId, Require, Slot, Verifier,
    keys::{Algorithm, JwksBuilder, JwksSource, KeySet},
    permission,
    permission::{Permission, PermissionMapping},
};

permission! {
    /// Read images.
    pub ImagesRead = "images:read";
    /// Upload images.
    pub ImagesWrite = "images:write";
    /// Delete images.
    pub ImagesDelete = "images:delete";
}

pub(crate) const DEFAULT_AUDIENCE: &str = "image-store";

/// The decision point's action of each route, and the permission the route
/// requires: what a transaction's scope must hold for the action.
const ACTION_SCOPES: [(&str, &str); 4] = [
    ("read", ImagesRead::NAME),
    ("create", ImagesWrite::NAME),
    ("tag", ImagesWrite::NAME),
    ("delete", ImagesDelete::NAME),
];

#[derive(Clone)]
struct Image {
    /// Issuer and subject: a `sub` is unique only within its issuer.
    owner: PrincipalId,
    size: usize,
    /// Tags, added later (the demo's tagging job).
    tags: Vec<String>,
}

#[derive(Clone, Default)]
struct Store {
    images: Arc<Mutex<HashMap<String, Image>>>,
    next: Arc<AtomicU64>,
    /// The external decision point of `[policy]`, which then replaces the
    /// built-in ownership rules.
    policy: Option<AuthZen>,
}

impl Store {
    /// The ownership rule for `action` (`read`, `create`, `delete`) on the
    /// image `id` of `owner`: the decision point's when there is one, else
    /// the built-in rule (the caller owns it or holds `P`'s `:any`).
    async fn check<P: Permission>(
        &self,
        caller: &Caller,
        action: &str,
        id: &str,
        owner: &PrincipalId,
    ) -> Result<(), AuthError> {
        match &self.policy {
            Some(pdp) => {
                let image = Resource::new("image", id).with_owner(owner);
                // A denial names the route's permission, a scope a client
                // can ask for (not the decision point's action name).
                pdp.authorize(caller, action, &image).await.require(P::NAME)
            }
            None if action == "create" => Ok(()),
            None => caller.require_owner_of::<P>(id, owner),
        }
    }
}

/// The routes of image_store behind `layer`; `/healthz`, `/readyz` (503
/// until the keys of the required slots are loaded, and again if they age
/// past their maximum staleness) and `/metrics` (Prometheus text, when
/// `metrics` holds the exporter's handle) need no token.
pub(crate) fn router(
    layer: MandateLayer,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
) -> Router {
    router_with_policy(layer, metrics, None)
}

/// [`router`], with the image routes asking `policy` (actions `read`,
/// `create`, `delete` on resources of type `image`) instead of the
/// built-in ownership rules.
pub(crate) fn router_with_policy(
    layer: MandateLayer,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    policy: Option<AuthZen>,
) -> Router {
    let readiness = layer.clone();
    let mut router = Router::new()
        .route("/me", get(me))
        .route("/images", post(create))
        .route("/images/{id}", get(read).delete(remove))
        .route("/images/{id}/tags", put(tag))
        .route_layer(layer)
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = readiness.is_ready();
                async move {
                    if ready {
                        (StatusCode::OK, "ready")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "keys not loaded")
                    }
                }
            }),
        );
    if let Some(handle) = metrics {
        router = router.route(
            "/metrics",
            get(move || {
                let text = handle.render();
                async move { ([("content-type", "text/plain; version=0.0.4")], text) }
            }),
        );
    }
    router.with_state(Store {
        policy,
        ..Store::default()
    })
}

fn principal_json(p: Option<&Principal>) -> Value {
    p.map_or(
        Value::Null,
        |p| json!({"sub": p.subject(), "permissions": p.permissions().iter().collect::<Vec<_>>()}),
    )
}

async fn me(caller: Caller) -> Json<Value> {
    Json(json!({
        "user": principal_json(caller.user()),
        "service": principal_json(caller.service()),
        "actors": caller.actors().iter().map(|a| a.subject()).collect::<Vec<_>>(),
        "transaction": caller.transaction().map(|t| json!({
            "txn": t.txn(),
            "sub": t.subject(),
            "scope": t.scope(),
            "tctx": t.tctx(),
        })),
    }))
}

async fn create(
    State(store): State<Store>,
    caller: Require<ImagesWrite>,
    body: Bytes,
) -> Result<Response, AuthError> {
    // An image belongs to a user (or a transaction's subject): a service
    // alone cannot upload.
    let owner = match (caller.user(), caller.transaction()) {
        (Some(user), _) => user.id(),
        (None, Some(transaction)) => transaction.id(),
        (None, None) => return Err(AuthError::insufficient_scope(ImagesWrite::NAME)),
    };
    let id = format!("img-{}", store.next.fetch_add(1, Ordering::Relaxed) + 1);
    store
        .check::<ImagesWrite>(caller.caller(), "create", &id, &owner)
        .await?;
    let answer = json!({"id": id, "owner": owner.subject()});
    let image = Image {
        owner,
        size: body.len(),
        tags: Vec::new(),
    };
    store.images.lock().unwrap().insert(id.clone(), image);
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

fn find(store: &Store, id: &str) -> Option<Image> {
    store.images.lock().unwrap().get(id).cloned()
}

async fn read(
    State(store): State<Store>,
    caller: Require<ImagesRead>,
    Path(id): Path<String>,
) -> Result<Response, AuthError> {
    let Some(image) = find(&store, &id) else {
        return Ok(StatusCode::NOT_FOUND.into_response());
    };
    store
        .check::<ImagesRead>(caller.caller(), "read", &id, &image.owner)
        .await?;
    let mut answer = json!({"id": id, "owner": image.owner.subject(), "size": image.size});
    if !image.tags.is_empty() {
        answer["tags"] = json!(image.tags);
    }
    Ok(Json(answer).into_response())
}

/// The most tags an image keeps, and the longest tag.
const MAX_TAGS: usize = 32;
const MAX_TAG: usize = 64;

/// `PUT /images/{id}/tags` with a JSON array of strings: replaces the
/// image's tags. The owner (or a holder of `images:write:any`) may, with
/// `images:write` held by every principal — for the demo's tagging job, the
/// user the job acts for and the job's delegated token.
async fn tag(
    State(store): State<Store>,
    caller: Require<ImagesWrite>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, AuthError> {
    let Some(image) = find(&store, &id) else {
        return Ok(StatusCode::NOT_FOUND.into_response());
    };
    store
        .check::<ImagesWrite>(caller.caller(), "tag", &id, &image.owner)
        .await?;
    let tags = match serde_json::from_slice::<Vec<String>>(&body) {
        Ok(tags) if tags.len() <= MAX_TAGS && tags.iter().all(|t| t.len() <= MAX_TAG) => tags,
        _ => {
            let why = format!("a JSON array of at most {MAX_TAGS} strings of {MAX_TAG} bytes");
            return Ok((StatusCode::BAD_REQUEST, Json(json!({"error": why}))).into_response());
        }
    };
    let mut images = store.images.lock().unwrap();
    let Some(image) = images.get_mut(&id) else {
        return Ok(StatusCode::NOT_FOUND.into_response());
    };
    image.tags = tags;
    Ok(Json(json!({"id": id, "tags": image.tags})).into_response())
}

async fn remove(
    State(store): State<Store>,
    caller: Require<ImagesDelete>,
    Path(id): Path<String>,
) -> Result<Response, AuthError> {
    let Some(image) = find(&store, &id) else {
        return Ok(StatusCode::NOT_FOUND.into_response());
    };
    // Checked before the mutation.
    store
        .check::<ImagesDelete>(caller.caller(), "delete", &id, &image.owner)
        .await?;
    store.images.lock().unwrap().remove(&id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Settings read from the environment (see the README's image_store contract).
pub(crate) struct Settings {
    pub(crate) bind: String,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) leeway: Duration,
    pub(crate) cache: bool,
    pub(crate) cooldown: Duration,
}

/// Where a slot's keys come from.
pub(crate) enum Keys {
    Static(KeySet),
    Remote(JwksSource),
}

impl From<KeySet> for Keys {
    fn from(keys: KeySet) -> Self {
        Keys::Static(keys)
    }
}

/// Plain http is accepted for loopback hosts only. The URL is parsed, so
/// that `http://localhost:80@evil.example/` (whose host is `evil.example`)
/// is not taken for loopback.
pub(crate) fn is_loopback(url: &str) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    uri.scheme_str() == Some("http")
        && uri
            .host()
            .is_some_and(|h| matches!(h, "127.0.0.1" | "localhost" | "[::1]"))
}

impl Keys {
    fn remote(
        source: JwksBuilder,
        url: &str,
        cooldown: Duration,
    ) -> Result<Self, tower_mandate::ConfigError> {
        let source = source.with_cooldown(cooldown);
        let source = if is_loopback(url) {
            source.insecure_allow_http()
        } else {
            source
        };
        Ok(Keys::Remote(source.build()?))
    }
}

pub(crate) fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Settings {
    pub(crate) fn from_env() -> Result<Self, Box<dyn std::error::Error>> {
        let algorithms = env("ALGORITHMS")
            .unwrap_or_else(|| "RS256,ES256,EdDSA".into())
            .split(',')
            .map(str::parse)
            .collect::<Result<Vec<Algorithm>, _>>()?;
        let leeway = env("LEEWAY_SECS").map_or(Ok(60), |v| v.parse::<u64>())?;
        let cooldown = env("KEY_COOLDOWN_SECS").map_or(Ok(10), |v| v.parse::<u64>())?;
        let cache = match env("VERIFIED_CACHE").as_deref() {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => {
                return Err(format!("VERIFIED_CACHE must be on or off, not {other:?}").into());
            }
        };
        Ok(Settings {
            bind: env("BIND").unwrap_or_else(|| "127.0.0.1:3000".into()),
            algorithms,
            leeway: Duration::from_secs(leeway),
            cache,
            cooldown: Duration::from_secs(cooldown),
        })
    }

    /// Defaults, as with an empty environment.
    pub(crate) fn defaults() -> Self {
        Settings {
            bind: "127.0.0.1:3000".into(),
            algorithms: vec![Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA],
            leeway: Duration::from_secs(60),
            cache: true,
            cooldown: Duration::from_secs(10),
        }
    }

    /// `{PREFIX}_JWKS_FILE`, else `{PREFIX}_JWKS_URL`, else OIDC discovery from the issuer.
    fn keys(&self, prefix: &str, issuer: &str) -> Result<Keys, Box<dyn std::error::Error>> {
        if let Some(path) = env(&format!("{prefix}_JWKS_FILE")) {
            return Ok(Keys::Static(KeySet::from_jwks_file(path)?));
        }
        if let Some(url) = env(&format!("{prefix}_JWKS_URL")) {
            return Ok(Keys::remote(
                JwksSource::builder(url.clone()),
                &url,
                self.cooldown,
            )?);
        }
        Ok(Keys::remote(
            JwksSource::discovery(issuer),
            issuer,
            self.cooldown,
        )?)
    }

    /// The rules of one slot for `issuer` with `keys`.
    pub(crate) fn verifier(
        &self,
        issuer: &str,
        audience: &str,
        keys: impl Into<Keys>,
    ) -> Result<Verifier, tower_mandate::ConfigError> {
        let rules = Issuer::new(issuer, audience)
            .with_algorithms(self.algorithms.iter().copied())
            .with_leeway(self.leeway)
            .with_permissions(
                PermissionMapping::default().with_permission_claims(["scope", "permissions"]),
            );
        let rules = match keys.into() {
            Keys::Static(keys) => rules.with_keys(keys),
            Keys::Remote(source) => {
                source.prefetch();
                rules.with_jwks(source)
            }
        };
        let verifier = Verifier::builder([rules]);
        if self.cache {
            verifier.build()
        } else {
            verifier.without_cache().build()
        }
    }
}

/// Issuers made in-process when the environment names none.
pub(crate) struct Embedded {
    pub(crate) users: TestIssuer,
    pub(crate) services: TestIssuer,
}

impl Embedded {
    pub(crate) fn new(audience: &str) -> Self {
        Embedded {
            users: TestIssuer::rs256("https://users.image-store.local").with_audience(audience),
            services: TestIssuer::es256("https://services.image-store.local")
                .with_audience(audience),
        }
    }
}

/// The file named by `MANDATE_CONFIG`, when it is set. A file that cannot
/// be read or used stops the process with a message naming the key.
pub(crate) fn config_file() -> Option<tower_mandate::config::MandateConfig> {
    let path = env("MANDATE_CONFIG")?;
    match tower_mandate::config::MandateConfig::from_toml_file(&path) {
        Ok(config) => Some(config),
        Err(e) => exit_with(&path, &e),
    }
}

/// Stop at start-up on a configuration that cannot be used.
pub(crate) fn exit_with(path: &str, e: &dyn std::fmt::Display) -> ! {
    eprintln!("MANDATE_CONFIG {path}: {e}");
    std::process::exit(2)
}

/// The layer, the embedded issuers (when the environment names none) and
/// the decision point of `[policy]`.
pub(crate) type Configured = (MandateLayer, Option<Embedded>, Option<AuthZen>);

/// The layer from `MANDATE_CONFIG` when it is set, else from the
/// environment (see [`layer_from_env`]). A slot that takes DPoP and names
/// no `dpop_origins` checks proofs against the address the store listens
/// on, `http://<bound>`.
pub(crate) fn layer_from_config_or_env(
    settings: &Settings,
    bound: std::net::SocketAddr,
) -> Result<Configured, Box<dyn std::error::Error>> {
    let Some(mut config) = config_file() else {
        let (layer, embedded) = layer_from_env(settings)?;
        return Ok((layer, embedded, None));
    };
    if let Some(policy) = config.policy.as_mut() {
        // A decision point on this machine may be plain http.
        if is_loopback(&policy.authzen_url) {
            policy.insecure_allow_http = true;
        }
        // Inside a transaction, each action needs its route's permission
        // (unless the file maps it otherwise).
        for (action, scope) in ACTION_SCOPES {
            policy
                .action_scopes
                .entry(action.to_owned())
                .or_insert_with(|| scope.to_owned());
        }
    }
    let path = env("MANDATE_CONFIG").unwrap_or_default();
    let policy = config
        .providers()
        .and_then(|providers| config.authzen(&providers))
        .unwrap_or_else(|e| exit_with(&path, &e));
    for slot in [config.user.as_mut(), config.service.as_mut()]
        .into_iter()
        .flatten()
    {
        if slot.dpop != tower_mandate::config::DpopMode::Bearer && slot.dpop_origins.is_empty() {
            slot.dpop_origins.push(format!("http://{bound}"));
        }
    }
    match config.layer() {
        Ok(layer) => Ok((layer, None, policy)),
        Err(e) => exit_with(&path, &e),
    }
}

/// The layer as the environment describes it; the embedded issuers when
/// `USER_ISSUER` is unset.
pub(crate) fn layer_from_env(
    settings: &Settings,
) -> Result<(MandateLayer, Option<Embedded>), Box<dyn std::error::Error>> {
    let user_aud = env("USER_AUDIENCE").unwrap_or_else(|| DEFAULT_AUDIENCE.into());
    let service_aud = env("SERVICE_AUDIENCE").unwrap_or_else(|| DEFAULT_AUDIENCE.into());
    let mut embedded = None;
    let user = match env("USER_ISSUER") {
        Some(iss) => settings.verifier(&iss, &user_aud, settings.keys("USER", &iss)?)?,
        None => {
            let e = Embedded::new(&user_aud);
            let v = settings.verifier(e.users.issuer(), &user_aud, e.users.key_set())?;
            embedded = Some(e);
            v
        }
    };
    // Embedded mode embeds a service issuer too, unless SERVICE_ISSUER names one.
    let service = match (env("SERVICE_ISSUER"), &embedded) {
        (Some(iss), _) => {
            Some(settings.verifier(&iss, &service_aud, settings.keys("SERVICE", &iss)?)?)
        }
        (None, Some(e)) => {
            Some(settings.verifier(e.services.issuer(), &service_aud, e.services.key_set())?)
        }
        (None, None) => None,
    };
    Ok((layer(user, service)?, embedded))
}

/// With a service slot, both slots are optional so that a service may call
/// without a user (jobs); without one, the user slot is required.
pub(crate) fn layer(
    user: Verifier,
    service: Option<Verifier>,
) -> Result<MandateLayer, tower_mandate::ConfigError> {
    let builder = MandateLayer::builder();
    match service {
        Some(service) => builder
            .user(Slot::optional(user))
            .service(Slot::optional(service))
            .build(),
        None => builder.user(Slot::required(user)).build(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_urls_are_parsed() {
        struct Case {
            url: &'static str,
            loopback: bool,
        }
        let cases = [
            Case {
                url: "http://127.0.0.1:8080/jwks",
                loopback: true,
            },
            Case {
                url: "http://localhost/x",
                loopback: true,
            },
            Case {
                url: "http://[::1]:3000",
                loopback: true,
            },
            Case {
                url: "http://localhost:80@evil.example/",
                loopback: false,
            },
            Case {
                url: "http://127.0.0.1@evil.example/",
                loopback: false,
            },
            Case {
                url: "http://127.0.0.1.evil.example/",
                loopback: false,
            },
            Case {
                url: "https://127.0.0.1/",
                loopback: false,
            },
            Case {
                url: "http://evil.example/?h=127.0.0.1",
                loopback: false,
            },
            Case {
                url: "not a url",
                loopback: false,
            },
        ];
        for c in cases {
            assert_eq!(super::is_loopback(c.url), c.loopback, "{}", c.url);
        }
    }
}
