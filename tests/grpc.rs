//! gRPC: the generated code of the grpc_store example is current, and a real
//! tonic server under `MandateLayer` answers every status over a real tonic
//! client on 127.0.0.1.

mod support;

#[test]
fn generated_code_is_current() {
    let dir = support::manifest_dir();
    let fds = protox::compile(["mandate/demo/v1/images.proto"], [dir.join("proto")])
        .expect("the .proto compiles");
    let out = support::temp_dir("protogen");
    tonic_prost_build::configure()
        .build_transport(false)
        .out_dir(&out)
        .compile_fds(fds)
        .expect("code generation");
    let generated = std::fs::read_to_string(out.join("mandate.demo.v1.rs")).unwrap();
    let committed_path = dir.join("examples/grpc_store/pb.rs");
    let header = "// @generated from proto/mandate/demo/v1/images.proto by tests/grpc.rs\n// (REGENERATE=1 cargo test --all-features --test grpc generated_code_is_current)\n";
    let want = format!("{header}{generated}");
    if std::env::var_os("REGENERATE").is_some() {
        std::fs::write(&committed_path, &want).unwrap();
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        committed == want,
        "examples/grpc_store/pb.rs is stale: REGENERATE=1 cargo test --all-features --test grpc generated_code_is_current"
    );
}

#[path = "../examples/grpc_store/service.rs"]
mod service;

use std::time::Duration;

use service::pb::images_client::ImagesClient;
use service::pb::{DeleteRequest, GetRequest};
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tower_mandate::testing::TestIssuer;
use tower_mandate::{Issuer, MandateLayer, Slot, Verifier, keys::JwksSource};

const AUD: &str = "image-store";

async fn serve(layer: MandateLayer) -> Channel {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(service::pb::images_server::ImagesServer::new(
                service::Store::seeded("https://users.example"),
            ))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap()
}

fn with_tokens<T>(message: T, user: Option<&str>, service: Option<&str>) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    if let Some(t) = user {
        req.metadata_mut().insert(
            "authorization",
            MetadataValue::try_from(format!("Bearer {t}")).unwrap(),
        );
    }
    if let Some(t) = service {
        req.metadata_mut().insert(
            "service-authorization",
            MetadataValue::try_from(format!("Bearer {t}")).unwrap(),
        );
    }
    req
}

#[tokio::test]
async fn every_status_over_a_real_tonic_client() {
    let users = TestIssuer::rs256("https://users.example").with_audience(AUD);
    let services = TestIssuer::es256("https://services.example").with_audience(AUD);
    let layer = MandateLayer::builder()
        .user(Slot::optional(
            Verifier::new([Issuer::new(users.issuer(), AUD).with_keys(users.key_set())]).unwrap(),
        ))
        .service(Slot::optional(
            Verifier::new([Issuer::new(services.issuer(), AUD).with_keys(services.key_set())])
                .unwrap(),
        ))
        .build()
        .unwrap();
    let mut client = ImagesClient::new(serve(layer).await);
    let scope = "images:read images:delete";
    let alice = users.token("alice").scope(scope).sign();
    let bob = users.token("bob").scope(scope).sign();
    let reader = users.token("carol").scope("images:delete").sign();
    let archiver = services
        .token("archiver")
        .scope("images:read images:read:any")
        .sign();
    let forged =
        users
            .token("alice")
            .scope(scope)
            .sign_with(&tower_mandate::mint::SigningKey::generate(
                tower_mandate::keys::Algorithm::RS256,
                "key-1",
            ));
    let get = |id: &str| GetRequest { id: id.into() };

    struct Case<'a> {
        name: &'a str,
        id: &'a str,
        user: Option<&'a str>,
        service: Option<&'a str>,
        code: Code,
    }
    let cases = [
        Case {
            name: "owner",
            id: "img-1",
            user: Some(&alice),
            service: None,
            code: Code::Ok,
        },
        Case {
            name: "no token",
            id: "img-1",
            user: None,
            service: None,
            code: Code::Unauthenticated,
        },
        Case {
            name: "forged",
            id: "img-1",
            user: Some(&forged),
            service: None,
            code: Code::Unauthenticated,
        },
        Case {
            name: "garbage",
            id: "img-1",
            user: Some("abc"),
            service: None,
            code: Code::Unauthenticated,
        },
        Case {
            name: "not the owner",
            id: "img-1",
            user: Some(&bob),
            service: None,
            code: Code::PermissionDenied,
        },
        Case {
            name: "no images:read",
            id: "img-1",
            user: Some(&reader),
            service: None,
            code: Code::PermissionDenied,
        },
        Case {
            name: "unknown id",
            id: "img-9",
            user: Some(&alice),
            service: None,
            code: Code::NotFound,
        },
        Case {
            name: "unknown id, no permission",
            id: "img-9",
            user: Some(&reader),
            service: None,
            code: Code::PermissionDenied,
        },
        Case {
            name: "service alone, :any",
            id: "img-1",
            user: None,
            service: Some(&archiver),
            code: Code::Ok,
        },
    ];
    for c in cases {
        let got = client
            .get(with_tokens(get(c.id), c.user, c.service))
            .await
            .map_or_else(|s| s.code(), |_| Code::Ok);
        assert_eq!(got, c.code, "{}", c.name);
    }

    // Two credentials in one slot: INVALID_ARGUMENT.
    let mut req = with_tokens(get("img-1"), Some(&alice), None);
    req.metadata_mut().append(
        "authorization",
        MetadataValue::try_from(format!("Bearer {bob}")).unwrap(),
    );
    assert_eq!(
        client.get(req).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    // Delete: the archiver may read any image but delete none; the owner may.
    let err = client
        .delete(with_tokens(
            DeleteRequest { id: "img-1".into() },
            None,
            Some(&archiver),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    client
        .delete(with_tokens(
            DeleteRequest { id: "img-1".into() },
            Some(&alice),
            None,
        ))
        .await
        .unwrap();
    let err = client
        .get(with_tokens(get("img-1"), Some(&alice), None))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn keys_that_cannot_be_had_are_unavailable() {
    let users = TestIssuer::rs256("https://users.example").with_audience(AUD);
    // A JWKS endpoint nobody listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let keys = JwksSource::builder(format!("http://{dead}/jwks"))
        .insecure_allow_http()
        .with_timeouts(Duration::from_millis(200), Duration::from_millis(300))
        .with_max_wait(Duration::from_secs(1))
        .build()
        .unwrap();
    let layer = MandateLayer::new(
        Verifier::new([Issuer::new(users.issuer(), AUD).with_jwks(keys)]).unwrap(),
    );
    let mut client = ImagesClient::new(serve(layer).await);
    let alice = users.token("alice").scope("images:read").sign();
    let err = client
        .get(with_tokens(
            GetRequest { id: "img-1".into() },
            Some(&alice),
            None,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_eq!(err.message(), "keys unavailable");
}

#[tokio::test]
async fn health_checks_skip_authentication_and_nothing_else_does() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let users = TestIssuer::rs256("https://users.example").with_audience(AUD);
    let layer = MandateLayer::builder()
        .user(Slot::required(
            Verifier::new([Issuer::new(users.issuer(), AUD).with_keys(users.key_set())]).unwrap(),
        ))
        .add_skip_grpc_health()
        .build()
        .unwrap();
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<service::pb::images_server::ImagesServer<service::Store>>()
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(health)
            .add_service(service::pb::images_server::ImagesServer::new(
                service::Store::seeded("https://users.example"),
            ))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();

    // The health check answers without a token, for the server and a service.
    let mut health = HealthClient::new(channel.clone());
    for name in ["", "mandate.demo.v1.Images"] {
        let answer = health
            .check(HealthCheckRequest {
                service: name.into(),
            })
            .await
            .unwrap_or_else(|s| panic!("health check {name:?}: {s:?}"));
        assert_eq!(answer.get_ref().status(), ServingStatus::Serving);
    }
    // Every other method still needs a token.
    let mut images = ImagesClient::new(channel.clone());
    let refused = images
        .get(with_tokens(GetRequest { id: "img-1".into() }, None, None))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    let alice = users.token("alice").scope("images:read").sign();
    images
        .get(with_tokens(
            GetRequest { id: "img-1".into() },
            Some(&alice),
            None,
        ))
        .await
        .expect("alice reads her image");

    // A path that only starts like the health service's is not skipped
    // into another service: tonic routes the exact path, which names no
    // method, and the images service is never reached unauthenticated.
    let mut raw = tonic::client::Grpc::new(channel);
    raw.ready().await.unwrap();
    let sneaky = raw
        .unary::<_, service::pb::Image, _>(
            tonic::Request::new(GetRequest { id: "img-1".into() }),
            "/grpc.health.v1.Health/../mandate.demo.v1.Images/Get"
                .parse()
                .unwrap(),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(sneaky.code(), Code::Unimplemented, "{sneaky:?}");
}
