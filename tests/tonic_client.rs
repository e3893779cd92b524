//! `PropagateLayer` on a tonic `Channel`: a real tonic server (the standard
//! health service) and client on 127.0.0.1; the server checks both tokens,
//! carried in gRPC metadata, with the crate's verifiers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::transport::{Channel, Server};
use tonic::{Code, Request, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower::ServiceBuilder;
use tower_mandate::mint::SigningKey;
use tower_mandate::propagate::{Destination, PropagateLayer};
use tower_mandate::provider::{SelfSigned, TokenRequest};
use tower_mandate::testing::TestIssuer;
use tower_mandate::{
    Caller, Issuer, Verifier,
    keys::{Algorithm, KeySet},
};

#[tokio::test]
async fn tokens_travel_in_grpc_metadata() {
    let users = TestIssuer::rs256("https://users.example").with_audience("health");
    let user_verifier =
        Verifier::new([Issuer::new(users.issuer(), "health").with_keys(users.key_set())]).unwrap();
    let key = SigningKey::generate(Algorithm::EdDSA, "svc-1");
    let service_verifier = Verifier::new([Issuer::new("https://svc.internal", "health")
        .with_keys(KeySet::from_jwks(&key.jwks()).unwrap())])
    .unwrap();
    let me = SelfSigned::new("https://svc.internal", key).unwrap();

    // The server: verifies both tokens from metadata, records who called.
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let record = seen.clone();
    let (uv, sv) = (user_verifier.clone(), service_verifier);
    let check = move |req: Request<()>| -> Result<Request<()>, Status> {
        let bearer = |name: &str| {
            req.metadata()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_owned)
                .ok_or_else(|| Status::unauthenticated(format!("no {name}")))
        };
        let user = uv
            .verify(&bearer("authorization")?)
            .map_err(|e| Status::unauthenticated(e.reason()))?;
        let service = sv
            .verify(&bearer("service-authorization")?)
            .map_err(|e| Status::unauthenticated(e.reason()))?;
        record
            .lock()
            .unwrap()
            .push((user.subject().to_owned(), service.subject().to_owned()));
        Ok(req)
    };
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        Server::builder()
            .layer(tonic::service::InterceptorLayer::new(check))
            .add_service(health)
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                async {
                    let _ = stopped.await;
                },
            ),
    );

    // The client: a Channel under PropagateLayer; requests carry only a path.
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap();
    let channel = ServiceBuilder::new()
        .layer(PropagateLayer::single_destination(
            Destination::insecure_http("127.0.0.1", addr.port())
                .forward_user_token()
                .with_service_token(me, TokenRequest::for_audience("health")),
        ))
        .service(channel);
    let mut client = HealthClient::new(channel);

    let alice = user_verifier.verify(&users.token("alice").sign()).unwrap();
    let reply = Caller::new(Some(alice), None)
        .scope({
            let mut client = client.clone();
            async move {
                client
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
            }
        })
        .await
        .unwrap();
    assert_eq!(reply.into_inner().status, 1, "SERVING");
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        [("alice".to_owned(), "https://svc.internal".to_owned())]
    );

    // Without a current caller the user token is missing: UNAUTHENTICATED.
    let err = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(err.message(), "no authorization");
    let _ = stop.send(());
}
