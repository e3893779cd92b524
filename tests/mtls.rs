//! Certificate-bound tokens (RFC 8705 §3): a real rustls server asking for
//! client certificates, certificates from rcgen, the thumbprint a token is
//! bound to computed by Python's hashlib (not by the crate). The right
//! certificate passes; another one, none, and a header a client made up are
//! refused. The same over tonic's own TLS server, and behind Envoy's
//! `x-forwarded-client-cert` when the layer is told to trust it.

mod support;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use serde_json::json;
use tokio_rustls::rustls;
use tower::ServiceExt as _;
use tower_mandate::binding::{CertificateSource, ClientCertificate};
use tower_mandate::testing::TestIssuer;
use tower_mandate::{Caller, Issuer, MandateLayer, Slot, Verifier};

const AUD: &str = "images";

struct Pki {
    ca_pem: String,
    server: (String, String),
    alice: (String, String),
    mallory: (String, String),
}

impl Pki {
    fn new() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf = |names: Vec<String>, client: bool| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(names).unwrap();
            params.extended_key_usages = vec![if client {
                ExtendedKeyUsagePurpose::ClientAuth
            } else {
                ExtendedKeyUsagePurpose::ServerAuth
            }];
            let cert = params.signed_by(&key, &issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        Pki {
            ca_pem: ca.pem(),
            server: leaf(vec!["127.0.0.1".into(), "localhost".into()], false),
            alice: leaf(vec!["alice.client".into()], true),
            mallory: leaf(vec!["mallory.client".into()], true),
        }
    }
}

/// `x5t#S256` of a PEM certificate, by Python's hashlib.
fn x5t(pem: &str) -> String {
    support::python(&[
        "-c",
        "import base64,hashlib,ssl,sys;\
         der=ssl.PEM_cert_to_DER_cert(sys.argv[1]);\
         print(base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b'=').decode())",
        pem,
    ])
    .trim()
    .to_owned()
}

/// The lowercase hex SHA-256 of a PEM certificate (Envoy's `Hash`).
fn hex_sha256(pem: &str) -> String {
    support::python(&[
        "-c",
        "import hashlib,ssl,sys;print(hashlib.sha256(ssl.PEM_cert_to_DER_cert(sys.argv[1])).hexdigest())",
        pem,
    ])
    .trim()
    .to_owned()
}

async fn me(caller: Caller) -> String {
    json!({
        "sub": caller.user().map(|u| u.subject().to_owned()),
        "x5t": caller.certificate_thumbprint(),
    })
    .to_string()
}

fn layer(idp: &TestIssuer, source: Option<CertificateSource>) -> MandateLayer {
    let verifier =
        Verifier::new([Issuer::new(idp.issuer(), AUD).with_keys(idp.key_set())]).unwrap();
    let mut builder =
        MandateLayer::builder().user(Slot::required(verifier).require_certificate_bound());
    if let Some(source) = source {
        builder = builder.with_client_certificates(source);
    }
    builder.build().unwrap()
}

/// Serve `app` over TLS asking for (not requiring) a client certificate of
/// the CA, for at most `max` connections; each request carries the
/// connection's certificate as a `ClientCertificate`.
async fn serve_mtls(app: Router, pki: &Pki, max: usize) -> String {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(pki.server.0.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(pki.server.1.as_bytes()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..max {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                // The client's own certificate, once per connection.
                let cert = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(ClientCertificate::from_der);
                let service = hyper::service::service_fn(
                    move |mut req: http::Request<hyper::body::Incoming>| {
                        if let Some(cert) = &cert {
                            req.extensions_mut().insert(cert.clone());
                        }
                        app.clone().oneshot(req)
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    format!("https://127.0.0.1:{}", addr.port())
}

fn client(pki: &Pki, identity: Option<&(String, String)>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap());
    if let Some((cert, key)) = identity {
        builder = builder
            .identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

async fn fetch(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    extra: Option<(&str, &str)>,
) -> (u16, String) {
    let mut req = client
        .get(url)
        .header("authorization", format!("Bearer {token}"));
    if let Some((name, value)) = extra {
        req = req.header(name, value);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.text().await.unwrap_or_default();
    (status, challenge.unwrap_or(body))
}

#[tokio::test]
async fn a_certificate_bound_token_needs_its_certificate_on_the_connection() {
    let pki = Pki::new();
    let idp = TestIssuer::es256("https://id.example");
    let alice_x5t = x5t(&pki.alice.0);
    let bound = idp
        .token("alice")
        .audience(AUD)
        .claim("cnf", json!({"x5t#S256": alice_x5t}))
        .sign();
    let unbound = idp.token("bob").audience(AUD).sign();
    let app = Router::new()
        .route("/me", get(me))
        .route_layer(layer(&idp, None));
    let base = serve_mtls(app, &pki, 16).await;
    let url = format!("{base}/me");

    let alice = client(&pki, Some(&pki.alice));
    let res = alice
        .get(&url)
        .header("authorization", format!("Bearer {bound}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["x5t"], alice_x5t.as_str());

    // Another certificate, no certificate: refused.
    let (status, challenge) = fetch(&client(&pki, Some(&pki.mallory)), &url, &bound, None).await;
    assert_eq!(status, 401);
    assert!(
        challenge.contains("client certificate does not match the token"),
        "{challenge}"
    );
    let (status, challenge) = fetch(&client(&pki, None), &url, &bound, None).await;
    assert_eq!(status, 401);
    assert!(
        challenge.contains("without a client certificate"),
        "{challenge}"
    );
    // The slot takes certificate-bound tokens only.
    let (status, challenge) = fetch(&alice, &url, &unbound, None).await;
    assert_eq!(status, 401);
    assert!(
        challenge.contains("certificate-bound token required"),
        "{challenge}"
    );
    // A proxy header the client made up is not read unless the layer names it.
    let xfcc = format!("Hash={}", hex_sha256(&pki.alice.0));
    let (status, _) = fetch(
        &client(&pki, Some(&pki.mallory)),
        &url,
        &bound,
        Some(("x-forwarded-client-cert", &xfcc)),
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn behind_envoy_the_forwarded_certificate_counts_when_named() {
    let pki = Pki::new();
    let idp = TestIssuer::es256("https://id.example");
    let bound = idp
        .token("alice")
        .audience(AUD)
        .claim("cnf", json!({"x5t#S256": x5t(&pki.alice.0)}))
        .sign();
    let app = Router::new()
        .route("/me", get(me))
        .route_layer(layer(&idp, Some(CertificateSource::envoy_xfcc())));
    let server = support::Server::start(app).await;
    let http = support::http_client();
    let url = server.url("/me");
    let by = "By=spiffe://cluster.local/ns/images/sa/store";
    let alice = format!(
        "{by};Hash={};Subject=\"CN=alice,O=x\";URI=spiffe://a",
        hex_sha256(&pki.alice.0)
    );
    let mallory = format!("{by};Hash={}", hex_sha256(&pki.mallory.0));
    let cert = percent_encode(&pki.alice.0);
    let with_cert = format!("{by};Cert=\"{cert}\"");
    // Envoy in APPEND_FORWARD mode appends its element to what the client
    // sent: a client's open quote must not swallow it (SECURITY.md).
    let injected = format!("Hash={};By=\",{mallory}", hex_sha256(&pki.alice.0));
    for (xfcc, want) in [
        (&alice, 200),
        (&with_cert, 200),
        (&mallory, 401),
        (&injected, 400),
    ] {
        let (status, challenge) =
            fetch(&http, &url, &bound, Some(("x-forwarded-client-cert", xfcc))).await;
        assert_eq!(status, want, "{xfcc}: {challenge}");
    }
    let (status, _) = fetch(&http, &url, &bound, None).await;
    assert_eq!(status, 401);
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn tonic_tls_peer_certificates_bind_tokens() {
    use tonic::transport::{
        Certificate, Channel, ClientTlsConfig, Identity, Server, ServerTlsConfig,
    };
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    let pki = Pki::new();
    let idp = TestIssuer::es256("https://id.example");
    let bound = idp
        .token("alice")
        .audience(AUD)
        .claim("cnf", json!({"x5t#S256": x5t(&pki.alice.0)}))
        .sign();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(&pki.server.0, &pki.server.1))
        .client_ca_root(Certificate::from_pem(&pki.ca_pem))
        .client_auth_optional(true);
    tokio::spawn(
        Server::builder()
            .tls_config(tls)
            .unwrap()
            .layer(layer(&idp, None))
            .add_service(health)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let check = |identity: &(String, String)| {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&pki.ca_pem))
            .identity(Identity::from_pem(&identity.0, &identity.1))
            .domain_name("127.0.0.1");
        let token = bound.clone();
        async move {
            let channel = Channel::from_shared(format!("https://{addr}"))
                .unwrap()
                .tls_config(tls)
                .unwrap()
                .connect()
                .await
                .unwrap();
            let mut request = tonic::Request::new(HealthCheckRequest {
                service: String::new(),
            });
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
            HealthClient::new(channel).check(request).await.map(|_| ())
        }
    };
    check(&pki.alice)
        .await
        .expect("alice's certificate and token");
    let refused = check(&pki.mallory).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
}
