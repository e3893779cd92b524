//! Protected resource metadata (RFC 9728) through a client that knows
//! nothing but the resource's URL, as MCP clients do: a 401 names the
//! metadata, the metadata names the authorization server (a real
//! oidc-provider), its discovery document gives the token endpoint, and the
//! token obtained there opens the resource.

mod support;

use axum::Router;
use axum::routing::get;
use serde_json::Value;
use tower_mandate::keys::JwksSource;
use tower_mandate::server::ResourceMetadata;
use tower_mandate::{Issuer, MandateLayer, Require, Slot, Verifier, permission};

permission! {
    Read = "images:read";
}

const RELAY_SECRET: &str = "relay-secret-0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn a_client_finds_its_way_from_a_401_to_a_token() {
    let idp = support::Idp::start();
    let port = support::free_port();
    let resource = format!("http://127.0.0.1:{port}/api");
    let keys = JwksSource::discovery(idp.issuer.clone())
        .insecure_allow_http()
        .build()
        .unwrap();
    let layer = MandateLayer::builder()
        .user(Slot::required(
            Verifier::new([Issuer::new(idp.issuer.clone(), "image-store").with_jwks(keys)])
                .unwrap(),
        ))
        .with_resource_metadata(
            ResourceMetadata::new(&resource)
                .add_authorization_server(&idp.issuer)
                .with_scopes(["images:read", "images:write"])
                .with_name("images"),
        )
        .build()
        .unwrap();
    let metadata = layer.resource_metadata().unwrap().clone();
    let well_known = metadata.url().unwrap();
    let path = well_known
        .split_once(&format!("127.0.0.1:{port}"))
        .unwrap()
        .1
        .to_owned();
    assert_eq!(path, "/.well-known/oauth-protected-resource/api");
    let app = Router::new()
        .route("/api/images", get(|_: Require<Read>| async { "images" }))
        .route_layer(layer)
        .route(&path, metadata.route());
    let _server = support::Server::start_on(([127, 0, 0, 1], port).into(), app)
        .await
        .unwrap();
    let http = support::http_client();

    // 1. The resource refuses, naming its metadata.
    let res = http.get(format!("{resource}/images")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        challenge,
        format!(r#"Bearer resource_metadata="{well_known}""#)
    );
    let named = challenge.split('"').nth(1).unwrap();
    // 2. The metadata names the authorization server.
    let doc: Value = http.get(named).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["resource"], resource.as_str());
    assert_eq!(doc["bearer_methods_supported"][0], "header");
    assert_eq!(doc["scopes_supported"][0], "images:read");
    let issuer = doc["authorization_servers"][0].as_str().unwrap();
    // 3. Its discovery document gives the token endpoint.
    let discovery: Value = http
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token_endpoint = discovery["token_endpoint"].as_str().unwrap();
    // 4. A token for the resource, and the resource opens.
    let token: Value = http
        .post(token_endpoint)
        .basic_auth("relay", Some(RELAY_SECRET))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "images:read"),
            ("resource", "urn:image-store"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = token["access_token"].as_str().unwrap();
    let res = http
        .get(format!("{resource}/images"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // A refusal behind the layer names the metadata too.
    let weak: Value = http
        .post(token_endpoint)
        .basic_auth("relay", Some(RELAY_SECRET))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "images:write"),
            ("resource", "urn:image-store"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let res = http
        .get(format!("{resource}/images"))
        .bearer_auth(weak["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("insufficient_scope")
            && challenge.ends_with(&format!(r#"resource_metadata="{well_known}""#)),
        "{challenge}"
    );
}

#[test]
fn a_resource_that_is_not_a_url_is_refused_at_build() {
    let idp = tower_mandate::testing::TestIssuer::es256("https://id.example");
    let v = Verifier::new([Issuer::new(idp.issuer(), "a").with_keys(idp.key_set())]).unwrap();
    for bad in [
        "images",
        "http://images.example/api",
        "https://images.example/api?x=1",
    ] {
        let err = MandateLayer::builder()
            .user(Slot::required(v.clone()))
            .with_resource_metadata(ResourceMetadata::new(bad))
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("invalid URL"), "{bad}: {err}");
    }
    // A slot that requires DPoP says so in the document (RFC 9728 §2).
    let layer = MandateLayer::builder()
        .user(
            Slot::required(v).with_dpop(
                tower_mandate::binding::Dpop::required()
                    .with_origin("https://images.example")
                    .with_algorithms([tower_mandate::keys::Algorithm::ES256]),
            ),
        )
        .with_resource_metadata(ResourceMetadata::new("https://images.example"))
        .build()
        .unwrap();
    let doc = layer.resource_metadata().unwrap().document();
    assert_eq!(doc["dpop_bound_access_tokens_required"], true);
    // No authorization server named: the user slot's issuers.
    assert_eq!(
        doc["authorization_servers"],
        serde_json::json!(["https://id.example"])
    );
    assert_eq!(
        doc["dpop_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
}
