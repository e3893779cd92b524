//! Transaction Tokens (draft-ietf-oauth-transaction-tokens-10) minted by PyJWT
//! in the shape of the draft's example (`tests/support/txn_tokens.py`):
//! - the image_store binary takes them from its `MANDATE_CONFIG`
//!   `[transaction]` table, shows them at `/me`, and gates its routes on the
//!   intersection of the transaction's `scope` and the calling service;
//! - every broken token is refused, two `Txn-Token` headers are a 400;
//! - across three real servers (gateway → tagging → store) the token is
//!   forwarded unmodified and the context arrives intact at the third hop,
//!   while a tampered or expired one is refused at every hop.

mod support;

use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};
use tower_mandate::keys::KeySet;
use tower_mandate::propagate::{Destination, PropagateLayer, PropagateMiddleware};
use tower_mandate::testing::TestIssuer;
use tower_mandate::transaction::TransactionSlot;
use tower_mandate::{Caller, Issuer, MandateLayer, Slot, Verifier};

use support::{Server, http_client};

const DOMAIN: &str = "images.example";

fn minted(scope: &str) -> Value {
    serde_json::from_str(&support::python(&[
        "tests/support/txn_tokens.py",
        DOMAIN,
        scope,
    ]))
    .unwrap()
}

async fn send(
    url: &str,
    method: reqwest::Method,
    txn: &[&str],
    service: Option<&str>,
) -> (u16, Value) {
    let mut req = http_client().request(method, url);
    for t in txn {
        req = req.header("txn-token", *t);
    }
    if let Some(s) = service {
        req = req.header("service-authorization", format!("Bearer {s}"));
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn image_store_takes_transaction_tokens_from_its_config_file() {
    let all = "images:read images:write";
    let out = minted(all);
    let tokens = &out["tokens"];
    let t = |name: &str| tokens[name].as_str().unwrap().to_owned();
    let services = TestIssuer::es256("https://services.example").with_audience("image-store");
    let dir = support::temp_dir("txn-config");
    let tts = dir.join("tts-jwks.json");
    std::fs::write(&tts, out["jwks"].to_string()).unwrap();
    let svc = dir.join("services-jwks.json");
    std::fs::write(&svc, services.jwks()).unwrap();
    let file = dir.join("mandate.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[service]
mode = "optional"
[[service.issuers]]
issuer = "https://services.example"
audiences = ["image-store"]
jwks_file = {svc:?}

[transaction]
mode = "optional"                     # required | optional | off, like a slot
trust_domain = "{DOMAIN}"
jwks_file = {tts:?}
"#
        ),
    )
    .unwrap();
    let store =
        support::Example::spawn("image_store", &[("MANDATE_CONFIG", file.to_str().unwrap())]).await;
    let url = |path: &str| format!("{}{path}", store.base);
    use reqwest::Method;

    // /me shows the transaction, its context as the service made it.
    let (status, me) = send(&url("/me"), Method::GET, &[&t("valid")], None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["transaction"]["txn"], out["body"]["txn"]);
    assert_eq!(me["transaction"]["sub"], "d084sdrt234fsaw34tr23t");
    assert_eq!(me["transaction"]["scope"], all);
    assert_eq!(me["transaction"]["tctx"], out["body"]["tctx"]);
    let (_, me) = send(
        &url("/me"),
        Method::GET,
        &[],
        Some(&services.token("tagger").scope("images:read").sign()),
    )
    .await;
    assert_eq!(me["transaction"], Value::Null);
    // The draft's `aud` may be an array holding the trust domain.
    assert_eq!(
        send(&url("/me"), Method::GET, &[&t("aud_array")], None)
            .await
            .0,
        200
    );

    // The transaction alone: its scope decides; the owner is its `sub`.
    let (status, created) = send(&url("/images"), Method::POST, &[&t("valid")], None).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["owner"], "d084sdrt234fsaw34tr23t");
    let image = url(&format!("/images/{}", created["id"].as_str().unwrap()));
    assert_eq!(
        send(&image, Method::GET, &[&t("narrow")], None).await.0,
        200
    );
    // Within the transaction's purpose, but the calling service may not.
    let reader = services.token("tagger").scope("images:read").sign();
    assert_eq!(
        send(&url("/images"), Method::POST, &[&t("valid")], Some(&reader))
            .await
            .0,
        403
    );
    // The service could, but the transaction's purpose does not cover it.
    let deleter = services
        .token("cleaner")
        .scope("images:read images:delete")
        .sign();
    assert_eq!(
        send(&image, Method::DELETE, &[&t("valid")], Some(&deleter))
            .await
            .0,
        403
    );
    // Both hold it.
    let writer = services
        .token("tagger")
        .scope("images:read images:write")
        .sign();
    assert_eq!(
        send(&url("/images"), Method::POST, &[&t("valid")], Some(&writer))
            .await
            .0,
        201
    );

    // Every broken token: 401 invalid_token; two headers: 400.
    for name in [
        "expired",
        "wrong_aud",
        "wrong_typ",
        "at_jwt",
        "no_typ",
        "tampered",
        "other_key",
        "with_iss",
        "txn_number",
        "tctx_string",
        "no_txn",
        "no_sub",
        "no_scope",
        "no_req_wl",
        "no_iat",
        "no_exp",
    ] {
        let (status, body) = send(&url("/me"), Method::GET, &[&t(name)], None).await;
        assert_eq!(status, 401, "{name}: {body}");
        assert_eq!(body["error"], "invalid_token", "{name}");
    }
    let (status, _) = send(&url("/me"), Method::GET, &[&t("valid"), &t("narrow")], None).await;
    assert_eq!(status, 400, "two Txn-Token headers");
    // Authorization is not where a Transaction Token goes.
    let res = http_client()
        .get(url("/me"))
        .header("authorization", format!("Bearer {}", t("valid")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

/// One hop: verifies the transaction, answers its view and, when `next`
/// is given, what the next hop saw of it (forwarded by propagation).
async fn hop(keys: KeySet, next: Option<u16>) -> Server {
    let layer = MandateLayer::builder()
        .transaction(TransactionSlot::required(DOMAIN).with_keys(keys))
        .build()
        .unwrap();
    let client = next.map(|port| {
        let policy = PropagateLayer::builder()
            .add_destination(Destination::insecure_http("127.0.0.1", port))
            .build();
        (
            reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
                .with(PropagateMiddleware::new(&policy))
                .build(),
            port,
        )
    });
    let app = Router::new()
        .route(
            "/chain",
            get(move |caller: Caller| {
                let client = client.clone();
                async move {
                    let t = caller.transaction().unwrap();
                    let mut here = json!({"txn": t.txn(), "sub": t.subject(), "tctx": t.tctx(), "rctx": t.rctx()});
                    if let Some((client, port)) = client {
                        let res = client
                            .get(format!("http://127.0.0.1:{port}/chain"))
                            .send()
                            .await
                            .unwrap();
                        here["next"] = res.json::<Value>().await.unwrap();
                    }
                    axum::Json(here)
                }
            }),
        )
        .route_layer(layer);
    Server::start(app).await
}

#[tokio::test]
async fn three_hops_carry_the_transaction_unmodified() {
    let out = minted("images:read");
    let keys = KeySet::from_jwks(&out["jwks"].to_string()).unwrap();
    let store = hop(keys.clone(), None).await;
    let tagging = hop(keys.clone(), Some(store.addr.port())).await;
    let gateway = hop(keys, Some(tagging.addr.port())).await;
    let valid = out["tokens"]["valid"].as_str().unwrap();
    let (status, chain) = send(&gateway.url("/chain"), reqwest::Method::GET, &[valid], None).await;
    assert_eq!(status, 200, "{chain}");
    let third = &chain["next"]["next"];
    assert_eq!(third["txn"], out["body"]["txn"], "{chain}");
    assert_eq!(third["sub"], out["body"]["sub"]);
    assert_eq!(third["tctx"], out["body"]["tctx"]);
    assert_eq!(third["rctx"], out["body"]["rctx"]);
    assert_eq!(chain["next"]["txn"], chain["txn"]);
    // Refused at every hop.
    for server in [&gateway, &tagging, &store] {
        for name in ["tampered", "expired", "wrong_aud"] {
            let token = out["tokens"][name].as_str().unwrap();
            let (status, _) =
                send(&server.url("/chain"), reqwest::Method::GET, &[token], None).await;
            assert_eq!(status, 401, "{name}");
        }
    }
}

#[tokio::test]
async fn a_revoked_subjects_transaction_is_refused() {
    use tower_mandate::revocation::{MemoryStore, Revocation};
    let out = minted("images:read");
    let store = MemoryStore::new();
    let layer = MandateLayer::builder()
        .transaction(
            TransactionSlot::required(DOMAIN)
                .with_keys(KeySet::from_jwks(&out["jwks"].to_string()).unwrap()),
        )
        .with_revocation(Revocation::new(store.clone()).guard_replay())
        .build()
        .unwrap();
    let server = Server::start(
        Router::new()
            .route("/x", get(|| async { "ok" }))
            .route_layer(layer),
    )
    .await;
    let valid = out["tokens"]["valid"].as_str().unwrap();
    // Seen twice along a chain: no replay refusal for a Transaction Token.
    for _ in 0..2 {
        assert_eq!(
            send(&server.url("/x"), reqwest::Method::GET, &[valid], None)
                .await
                .0,
            200
        );
    }
    // Its subject revoked: refused (regression: SECURITY.md).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    store.revoke_subject(
        &format!("urn:txn-token-service:{DOMAIN}"),
        "d084sdrt234fsaw34tr23t",
        now + 60,
    );
    let (status, body) = send(&server.url("/x"), reqwest::Method::GET, &[valid], None).await;
    assert_eq!(status, 401, "{body}");
}

#[test]
fn the_slot_needs_its_keys_and_its_own_header() {
    let err = MandateLayer::builder()
        .transaction(TransactionSlot::required(DOMAIN))
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("needs the service's keys"),
        "{err}"
    );
    let idp = TestIssuer::es256("https://id.example");
    let users = Verifier::new([Issuer::new(idp.issuer(), "a").with_keys(idp.key_set())]).unwrap();
    let err =
        MandateLayer::builder()
            .user(Slot::required(users).with_source(
                tower_mandate::server::TokenSource::raw_header(tower_mandate::transaction::HEADER),
            ))
            .transaction(TransactionSlot::required(DOMAIN).with_keys(idp.key_set()))
            .build()
            .unwrap_err();
    assert!(err.to_string().contains("both read"), "{err}");
}
