//! The demo: starts image_store in-process with embedded issuers and plays
//! the image-sharing story, one line per step with the expected and actual
//! outcome. Exits non-zero if any step differs.
//!
//! ```text
//! cargo run --example demo
//! ```

#[path = "../image_store/app.rs"]
mod app;
mod jobs;
#[path = "../grpc_store/service.rs"]
mod service;
#[path = "../jobs/sts.rs"]
mod sts;
mod transaction;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::get;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use tower_mandate::keys::{Algorithm, JwksSource};
use tower_mandate::mint::SigningKey;
use tower_mandate::testing::TestIssuer;

/// The users' identity provider's JWKS endpoint, which the demo stops and
/// restarts to play an outage.
struct IdpKeys {
    addr: SocketAddr,
    doc: Arc<Mutex<String>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl IdpKeys {
    async fn start(idp: &TestIssuer) -> std::io::Result<IdpKeys> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let mut keys = IdpKeys {
            addr: listener.local_addr()?,
            doc: Arc::new(Mutex::new(idp.jwks())),
            task: None,
        };
        keys.serve(listener);
        Ok(keys)
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let doc = self.doc.clone();
        let app = axum::Router::new().route(
            "/jwks",
            get(move || {
                let doc = doc.lock().expect("lock").clone();
                async move { doc }
            }),
        );
        self.task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }

    fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    async fn restart(&mut self, idp: &TestIssuer) -> std::io::Result<()> {
        *self.doc.lock().expect("lock") = idp.jwks();
        for _ in 0..100 {
            if let Ok(listener) = tokio::net::TcpListener::bind(self.addr).await {
                self.serve(listener);
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let listener = tokio::net::TcpListener::bind(self.addr).await?;
        self.serve(listener);
        Ok(())
    }

    fn url(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }
}

struct Step<'a> {
    name: &'a str,
    method: Method,
    path: String,
    user: Option<&'a str>,
    service: Option<&'a str>,
    expect: u16,
}

struct Demo {
    client: Client,
    base: String,
    failures: usize,
}

impl Demo {
    async fn run(&mut self, step: Step<'_>) -> Value {
        let mut req = self
            .client
            .request(step.method, format!("{}{}", self.base, step.path));
        if let Some(t) = step.user {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(t) = step.service {
            req = req.header("service-authorization", format!("Bearer {t}"));
        }
        let (status, body) = match req.body("image bytes").send().await {
            Ok(res) => {
                let status = res.status();
                (status, res.json::<Value>().await.unwrap_or(Value::Null))
            }
            Err(e) => {
                println!("[FAIL] {}: request failed: {e}", step.name);
                self.failures += 1;
                return Value::Null;
            }
        };
        let ok = status == StatusCode::from_u16(step.expect).expect("valid status");
        if !ok {
            self.failures += 1;
        }
        println!(
            "[{}] {:<62} expected {} got {}",
            if ok { " ok " } else { "FAIL" },
            step.name,
            step.expect,
            status.as_u16()
        );
        body
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Collect the audit trail, to print it at the end.
    let audit = AuditLines::default();
    let sink = audit.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "tower_mandate::audit=info",
        ))
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .with_target(false)
        .without_time()
        .compact()
        .init();
    let settings = app::Settings {
        bind: "127.0.0.1:0".into(),
        ..app::Settings::defaults()
    };
    let e = app::Embedded::new(app::DEFAULT_AUDIENCE);
    // The users' keys come from their IdP's JWKS endpoint; the services' are fixed.
    let mut idp_keys = IdpKeys::start(&e.users).await?;
    let cooldown = Duration::from_secs(1);
    let user_keys = JwksSource::builder(idp_keys.url())
        .insecure_allow_http() // loopback only
        .with_cooldown(cooldown)
        .with_timeouts(Duration::from_millis(500), Duration::from_secs(1))
        .build()?;
    let layer = app::layer(
        settings.verifier(
            e.users.issuer(),
            app::DEFAULT_AUDIENCE,
            app::Keys::Remote(user_keys),
        )?,
        Some(settings.verifier(
            e.services.issuer(),
            app::DEFAULT_AUDIENCE,
            e.services.key_set(),
        )?),
    )?;
    let listener = tokio::net::TcpListener::bind(&settings.bind).await?;
    let addr = listener.local_addr()?;
    let grpc_layer = layer.clone();
    let server = tokio::spawn(async move { axum::serve(listener, app::router(layer, None)).await });
    println!("image_store on http://{addr} with embedded issuers\n");

    let all = "images:read images:write images:delete";
    let alice = e.users.token("alice").scope(all).sign();
    let bob = e.users.token("bob").scope(all).sign();
    let archiver = e
        .services
        .token("archiver")
        .scope("images:read images:read:any")
        .sign();
    let weak_service = e.services.token("thumbnailer").scope("images:write").sign();
    let forger = SigningKey::generate(Algorithm::RS256, "key-1");
    let forged = e.users.token("alice").scope(all).sign_with(&forger);
    let unsigned = e.users.token("alice").scope(all).unsigned();
    let expired = e
        .users
        .token("alice")
        .scope(all)
        .expired_for(Duration::from_secs(3600))
        .sign();
    let wrong_aud = e.users.token("alice").scope(all).audience("billing").sign();

    let mut demo = Demo {
        client: Client::new(),
        base: format!("http://{addr}"),
        failures: 0,
    };
    let created = demo
        .run(Step {
            name: "alice uploads an image",
            method: Method::POST,
            path: "/images".into(),
            user: Some(&alice),
            service: None,
            expect: 201,
        })
        .await;
    let id = created["id"].as_str().unwrap_or("img-1").to_owned();
    let image = format!("/images/{id}");
    let steps = [
        (
            "alice reads her image",
            Method::GET,
            Some(&alice),
            None,
            200,
        ),
        (
            "bob cannot read alice's image",
            Method::GET,
            Some(&bob),
            None,
            403,
        ),
        (
            "bob cannot delete alice's image",
            Method::DELETE,
            Some(&bob),
            None,
            403,
        ),
        (
            "archiver (no user) reads it with images:read:any",
            Method::GET,
            None,
            Some(&archiver),
            200,
        ),
        (
            "archiver cannot delete it",
            Method::DELETE,
            None,
            Some(&archiver),
            403,
        ),
        (
            "alice through a service lacking images:read is refused",
            Method::GET,
            Some(&alice),
            Some(&weak_service),
            403,
        ),
        (
            "forged token is refused",
            Method::GET,
            Some(&forged),
            None,
            401,
        ),
        (
            "alg:none token is refused",
            Method::GET,
            Some(&unsigned),
            None,
            401,
        ),
        (
            "expired token is refused",
            Method::GET,
            Some(&expired),
            None,
            401,
        ),
        (
            "token for another audience is refused",
            Method::GET,
            Some(&wrong_aud),
            None,
            401,
        ),
        ("no token at all is refused", Method::GET, None, None, 401),
        (
            "alice deletes her image",
            Method::DELETE,
            Some(&alice),
            None,
            204,
        ),
        ("the image is gone", Method::GET, Some(&alice), None, 404),
    ];
    for (name, method, user, service, expect) in steps {
        demo.run(Step {
            name,
            method,
            path: image.clone(),
            user: user.map(String::as_str),
            service: service.map(String::as_str),
            expect,
        })
        .await;
    }
    let me = demo
        .run(Step {
            name: "alice and archiver together on /me",
            method: Method::GET,
            path: "/me".into(),
            user: Some(&alice),
            service: Some(&archiver),
            expect: 200,
        })
        .await;
    let want = json!({"user": "alice", "service": "archiver"});
    let got = json!({"user": me["user"]["sub"], "service": me["service"]["sub"]});
    if got != want {
        println!("[FAIL] /me names {got}, expected {want}");
        demo.failures += 1;
    }

    println!("\ngRPC: the same story through mandate.demo.v1.Images (img-1 is alice's)");
    let grpc = grpc_story(
        grpc_layer,
        e.users.issuer(),
        &alice,
        &bob,
        &archiver,
        &forged,
    )
    .await?;
    demo.failures += grpc;

    println!(
        "\ntransactions: gateway → tagging → image store, one Txn-Token \
         (draft-ietf-oauth-transaction-tokens-10)"
    );
    demo.failures += transaction::story(&e.users, &e.services, &alice).await?;

    println!("\njobs: the upload answers at once, the tagging runs later on alice's behalf");
    demo.failures += jobs::story(&e.users, &format!("http://{addr}"), &alice, || {
        audit.lines()
    })
    .await?;

    println!("\nkeys: the users' identity provider goes down and rotates its key");
    let keep = e.users.token("alice").scope(all).sign();
    demo.run(Step {
        name: "alice's token verifies while the IdP is up",
        method: Method::GET,
        path: "/me".into(),
        user: Some(&keep),
        service: None,
        expect: 200,
    })
    .await;
    idp_keys.stop();
    tokio::time::sleep(cooldown).await;
    // A new token (not in the verified-token cache) signed with the known key.
    let fresh = e.users.token("alice").scope(all).sign();
    demo.run(Step {
        name: "IdP down: known keys still serve",
        method: Method::GET,
        path: "/me".into(),
        user: Some(&fresh),
        service: None,
        expect: 200,
    })
    .await;
    e.users.rotate();
    let rotated = e.users.token("alice").scope(all).sign();
    demo.run(Step {
        name: "IdP down: a token with an unknown kid is 503, not 401",
        method: Method::GET,
        path: "/me".into(),
        user: Some(&rotated),
        service: None,
        expect: 503,
    })
    .await;
    idp_keys.restart(&e.users).await?;
    tokio::time::sleep(cooldown + Duration::from_millis(100)).await;
    demo.run(Step {
        name: "IdP back: the rotated key is picked up",
        method: Method::GET,
        path: "/me".into(),
        user: Some(&rotated),
        service: None,
        expect: 200,
    })
    .await;
    let stranger = SigningKey::generate(Algorithm::RS256, "never-published");
    let unknown = e
        .users
        .token("mallory")
        .header("kid", json!("never-published"))
        .sign_with(&stranger);
    demo.run(Step {
        name: "IdP healthy: a kid it never published is 401",
        method: Method::GET,
        path: "/me".into(),
        user: Some(&unknown),
        service: None,
        expect: 401,
    })
    .await;

    server.abort();
    println!("\naudit trail (target tower_mandate::audit):");
    for line in audit.lines() {
        println!("  {line}");
    }
    if demo.failures > 0 {
        println!("\n{} step(s) differ from what was expected", demo.failures);
        std::process::exit(1);
    }
    println!("\nevery step as expected");
    Ok(())
}

/// Print one step of a story, expected against actual; whether they agree.
fn step(name: &str, want: &str, got: &str) -> bool {
    let ok = want == got;
    println!(
        "[{}] {:<62} expected {want} got {got}",
        if ok { " ok " } else { "FAIL" },
        name
    );
    ok
}

/// The audit events, as the subscriber formats them.
#[derive(Clone, Default)]
struct AuditLines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for AuditLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl AuditLines {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().expect("lock"))
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// The image-sharing story over gRPC; returns the number of steps that differ.
async fn grpc_story(
    layer: tower_mandate::MandateLayer,
    users_issuer: &str,
    alice: &str,
    bob: &str,
    archiver: &str,
    forged: &str,
) -> Result<usize, Box<dyn std::error::Error>> {
    use service::pb::images_client::ImagesClient;
    use service::pb::{DeleteRequest, GetRequest};
    use tonic::Code;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(service::pb::images_server::ImagesServer::new(
                service::Store::seeded(users_issuer),
            ))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut client = ImagesClient::new(channel);
    let with = |id: &str, user: Option<&str>, service: Option<&str>| {
        let mut get = tonic::Request::new(GetRequest { id: id.into() });
        let mut delete = tonic::Request::new(DeleteRequest { id: id.into() });
        for (name, token) in [("authorization", user), ("service-authorization", service)] {
            if let Some(t) = token {
                let value: tonic::metadata::MetadataValue<_> =
                    format!("Bearer {t}").parse().expect("ascii");
                get.metadata_mut().insert(name, value.clone());
                delete.metadata_mut().insert(name, value);
            }
        }
        (get, delete)
    };
    // (step, is a delete, user token, service token, expected status)
    type GrpcStep<'a> = (&'a str, bool, Option<&'a str>, Option<&'a str>, Code);
    let steps: [GrpcStep<'_>; 8] = [
        ("alice gets her image", false, Some(alice), None, Code::Ok),
        (
            "bob cannot get alice's image",
            false,
            Some(bob),
            None,
            Code::PermissionDenied,
        ),
        (
            "archiver (no user) gets it with images:read:any",
            false,
            None,
            Some(archiver),
            Code::Ok,
        ),
        (
            "archiver cannot delete it",
            true,
            None,
            Some(archiver),
            Code::PermissionDenied,
        ),
        ("no token at all", false, None, None, Code::Unauthenticated),
        (
            "forged token",
            false,
            Some(forged),
            None,
            Code::Unauthenticated,
        ),
        ("alice deletes her image", true, Some(alice), None, Code::Ok),
        (
            "the image is gone",
            false,
            Some(alice),
            None,
            Code::NotFound,
        ),
    ];
    let mut failures = 0;
    for (name, delete, user, service, want) in steps {
        let (get, del) = with("img-1", user, service);
        let got = if delete {
            client.delete(del).await.map(|_| ())
        } else {
            client.get(get).await.map(|_| ())
        }
        .map_or_else(|s| s.code(), |()| Code::Ok);
        let ok = got == want;
        failures += usize::from(!ok);
        println!(
            "[{}] {:<62} expected {:?} got {:?}",
            if ok { " ok " } else { "FAIL" },
            name,
            want,
            got
        );
    }
    server.abort();
    Ok(failures)
}
