//! The application's own reqwest client towards the identity provider: a
//! real HTTPS JWKS endpoint, discovery document and token endpoint on
//! 127.0.0.1 with a certificate from a private CA made in the test,
//! reachable only through the injected client; and the crate's rules
//! (no redirect, timeouts) still enforced on that client.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::json;
use tokio_rustls::rustls;
use tower_mandate::keys::JwksSource;
use tower_mandate::provider::{ClientAuth, ClientCredentials, TokenProvider, TokenRequest};
use tower_mandate::testing::TestIssuer;
use tower_mandate::{AuthErrorKind, Issuer, Verifier};

/// Serve `app` over TLS with the CA's server certificate, for at most
/// `max` connections; the base URL.
async fn serve_tls(app: Router, ca: &support::PrivateCa, max: usize) -> String {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = vec![CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(ca.key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..max {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                // A client that does not trust the CA fails the handshake.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    format!("https://127.0.0.1:{}", addr.port())
}

/// The application's client: it trusts the private CA, follows redirects
/// (reqwest's default) and has no timeout of its own.
fn trusting(ca: &support::PrivateCa) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.ca_pem.as_bytes()).unwrap())
}

#[tokio::test]
async fn keys_and_tokens_through_the_applications_client() {
    let dir = support::temp_dir("own-client");
    let ca = support::PrivateCa::new(&dir);
    let idp_holder: Arc<std::sync::OnceLock<String>> = Arc::default();
    let users = TestIssuer::es256("https://placeholder").with_audience("a");
    let published = users.jwks();
    let base_for_discovery = idp_holder.clone();
    let app =
        Router::new()
            .route("/jwks", get(move || std::future::ready(published.clone())))
            .route(
                "/.well-known/openid-configuration",
                get(move || {
                    let base = base_for_discovery.get().cloned().unwrap_or_default();
                    async move {
                        axum::Json(json!({"issuer": base, "jwks_uri": format!("{base}/jwks")}))
                    }
                }),
            )
            .route(
                "/token",
                post(|| async {
                    axum::Json(json!({
                        "access_token": "issued-through-the-private-ca",
                        "token_type": "Bearer",
                        "expires_in": 300
                    }))
                }),
            )
            .route(
                "/moved",
                get(|| async {
                    (StatusCode::FOUND, [(header::LOCATION, "/jwks")]).into_response()
                }),
            )
            .route(
                "/token-moved",
                post(|| async {
                    (
                        StatusCode::TEMPORARY_REDIRECT,
                        [(header::LOCATION, "/token")],
                    )
                        .into_response()
                }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "late"
                }),
            );
    let base = serve_tls(app, &ca, 64).await;
    idp_holder.set(base.clone()).unwrap();
    let client = || trusting(&ca);

    // JWKS over https with the application's client.
    let token = users.token("alice").claim("iss", json!(base)).sign();
    let via = |source: JwksSource| {
        Verifier::new([Issuer::new(base.clone(), "a").with_jwks(source)]).unwrap()
    };
    let jwks = JwksSource::builder(format!("{base}/jwks"))
        .with_client(client())
        .build()
        .unwrap();
    let principal = via(jwks).verify_async(&token).await.unwrap();
    assert_eq!(principal.subject(), "alice");
    // Discovery too.
    let discovered = JwksSource::discovery(base.clone())
        .with_client(client())
        .build()
        .unwrap();
    assert!(via(discovered).verify_async(&token).await.is_ok());
    // Without it, the private CA is not trusted: no keys.
    let default = JwksSource::builder(format!("{base}/jwks"))
        .with_max_wait(Duration::from_secs(2))
        .build()
        .unwrap();
    let e = via(default).verify_async(&token).await.unwrap_err();
    assert_eq!(e.kind(), AuthErrorKind::KeysUnavailable);

    // A token endpoint over https with the application's client.
    let provider = |path: &str, with: Option<reqwest::ClientBuilder>| {
        let builder = ClientCredentials::builder(
            format!("{base}{path}"),
            "relay",
            ClientAuth::SecretBasic("relay-secret".into()),
        );
        match with {
            Some(c) => builder.with_client(c).build(),
            None => builder.build(),
        }
    };
    let got = provider("/token", Some(client()))
        .token(TokenRequest::for_audience("b"))
        .await
        .unwrap();
    assert_eq!(got.secret(), "issued-through-the-private-ca");
    assert!(
        provider("/token", None)
            .token(TokenRequest::for_audience("b"))
            .await
            .is_err(),
        "the default client does not trust the private CA"
    );

    // The crate's rules hold on the application's client, which follows
    // redirects (reqwest's default policy) and has no timeout of its own.
    let refused = JwksSource::builder(format!("{base}/moved"))
        .with_client(client())
        .with_max_wait(Duration::from_secs(2))
        .build()
        .unwrap();
    let e = via(refused).verify_async(&token).await.unwrap_err();
    assert_eq!(
        e.kind(),
        AuthErrorKind::KeysUnavailable,
        "a redirected JWKS is not used"
    );
    let e = provider("/token-moved", Some(client()))
        .token(TokenRequest::for_audience("b"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("redirect"), "{e}");
    let slow = JwksSource::builder(format!("{base}/slow"))
        .with_client(client())
        .with_timeouts(Duration::from_millis(300), Duration::from_millis(500))
        .build()
        .unwrap();
    let started = Instant::now();
    assert!(slow.refresh().await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the crate's timeout applies: {:?}",
        started.elapsed()
    );
}
