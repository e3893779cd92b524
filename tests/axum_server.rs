//! Real axum servers on 127.0.0.1, real reqwest clients: the image_store
//! contract with tokens from the test kit, and the image_store example
//! binary with keys and tokens minted by PyJWT.

#[path = "../examples/image_store/app.rs"]
mod app;
mod support;

use axum::Router;
use axum::routing::get;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tower_mandate::mint::SigningKey;
use tower_mandate::{Caller, keys::Algorithm};

use support::{Server, http_client};

fn settings() -> app::Settings {
    app::Settings {
        bind: "127.0.0.1:0".into(),
        ..app::Settings::defaults()
    }
}

async fn image_store(e: &app::Embedded) -> Server {
    let s = settings();
    let aud = app::DEFAULT_AUDIENCE;
    let layer = app::layer(
        s.verifier(e.users.issuer(), aud, e.users.key_set())
            .unwrap(),
        Some(
            s.verifier(e.services.issuer(), aud, e.services.key_set())
                .unwrap(),
        ),
    )
    .unwrap();
    Server::start(app::router(layer, None)).await
}

#[tokio::test]
async fn image_store_contract_with_test_kit_tokens() {
    let e = app::Embedded::new(app::DEFAULT_AUDIENCE);
    let server = image_store(&e).await;
    let client = http_client();
    let all = "images:read images:write images:delete";
    let alice = e.users.token("alice").scope(all).sign();
    let bob = e
        .users
        .token("bob")
        .permissions(["images:read", "images:delete"])
        .sign();
    let archiver = e
        .services
        .token("archiver")
        .scope("images:read images:read:any")
        .sign();
    let weak = e.services.token("thumbnailer").scope("images:write").sign();
    let delegated = e.users.token("alice").scope(all).actor("tagger").sign();

    // Health needs no token.
    let res = client.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);

    // Upload: 201 with the owner; a service without a user gets 403.
    let res = server
        .call(&client, "POST", "/images", Some(&alice), None)
        .await;
    assert_eq!(res.0, StatusCode::CREATED);
    assert_eq!(res.1["owner"], "alice");
    let id = res.1["id"].as_str().unwrap().to_owned();
    let path = format!("/images/{id}");
    let res = server
        .call(&client, "POST", "/images", None, Some(&archiver))
        .await;
    assert_eq!(res.0, StatusCode::FORBIDDEN);
    let res = server
        .call(&client, "POST", "/images", Some(&bob), None)
        .await;
    assert_eq!(res.0, StatusCode::FORBIDDEN, "bob lacks images:write");

    struct Case<'a> {
        name: &'a str,
        method: &'a str,
        path: &'a str,
        user: Option<&'a str>,
        service: Option<&'a str>,
        status: u16,
    }
    let missing = "/images/img-999";
    let cases = [
        Case {
            name: "owner reads",
            method: "GET",
            path: &path,
            user: Some(&alice),
            service: None,
            status: 200,
        },
        Case {
            name: "other user reads",
            method: "GET",
            path: &path,
            user: Some(&bob),
            service: None,
            status: 403,
        },
        Case {
            name: "other user, absent image",
            method: "GET",
            path: missing,
            user: Some(&bob),
            service: None,
            status: 404,
        },
        Case {
            name: "no token, absent image",
            method: "GET",
            path: missing,
            user: None,
            service: None,
            status: 401,
        },
        Case {
            name: "archiver reads any",
            method: "GET",
            path: &path,
            user: None,
            service: Some(&archiver),
            status: 200,
        },
        Case {
            name: "archiver deletes",
            method: "DELETE",
            path: &path,
            user: None,
            service: Some(&archiver),
            status: 403,
        },
        Case {
            name: "owner via weak service",
            method: "GET",
            path: &path,
            user: Some(&alice),
            service: Some(&weak),
            status: 403,
        },
        Case {
            name: "owner via archiver",
            method: "GET",
            path: &path,
            user: Some(&alice),
            service: Some(&archiver),
            status: 200,
        },
        Case {
            name: "other user deletes",
            method: "DELETE",
            path: &path,
            user: Some(&bob),
            service: None,
            status: 403,
        },
        Case {
            name: "user token as service token",
            method: "GET",
            path: &path,
            user: None,
            service: Some(&alice),
            status: 401,
        },
        Case {
            name: "service token as user token",
            method: "GET",
            path: &path,
            user: Some(&archiver),
            service: None,
            status: 401,
        },
        Case {
            name: "owner deletes",
            method: "DELETE",
            path: &path,
            user: Some(&alice),
            service: None,
            status: 204,
        },
        Case {
            name: "gone",
            method: "GET",
            path: &path,
            user: Some(&alice),
            service: None,
            status: 404,
        },
    ];
    for c in cases {
        let (status, _) = server
            .call(&client, c.method, c.path, c.user, c.service)
            .await;
        assert_eq!(status.as_u16(), c.status, "{}", c.name);
    }

    // /me shows both principals and the actor chain.
    let (status, me) = server
        .call(&client, "GET", "/me", Some(&delegated), Some(&archiver))
        .await;
    assert_eq!(status, 200);
    assert_eq!(me["user"]["sub"], "alice");
    assert_eq!(me["service"]["sub"], "archiver");
    assert_eq!(
        me["service"]["permissions"],
        json!(["images:read", "images:read:any"])
    );
    assert_eq!(me["actors"], json!(["tagger"]));
    let (status, _) = server.call(&client, "GET", "/me", None, None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn rejections_over_the_wire() {
    let e = app::Embedded::new(app::DEFAULT_AUDIENCE);
    let server = image_store(&e).await;
    let client = http_client();
    let alice = e.users.token("alice").scope("images:read").sign();

    let res = client.get(server.url("/me")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");

    let res = client
        .get(server.url("/me"))
        .header("authorization", format!("Bearer {alice}"))
        .header("authorization", format!("Bearer {alice}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains(r#"error="invalid_request""#)
    );

    let forged = e
        .users
        .token("alice")
        .sign_with(&SigningKey::generate(Algorithm::RS256, "key-1"));
    let res = client
        .get(server.url("/me"))
        .header("authorization", format!("Bearer {forged}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.starts_with(r#"Bearer error="invalid_token""#),
        "{challenge}"
    );
    let body = res.text().await.unwrap();
    assert!(!body.contains(&forged[..20]), "the body echoes the token");

    let res = client
        .post(server.url("/images"))
        .header("authorization", format!("Bearer {alice}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(
        res.headers()["www-authenticate"],
        r#"Bearer error="insufficient_scope", error_description="permission missing", scope="images:write""#
    );

    // Unknown routes stay 404 without a token: the layer is on route_layer.
    let res = client.get(server.url("/nope")).send().await.unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn missing_layer_is_a_500_naming_the_fix() {
    async fn me(caller: Caller) -> String {
        format!("{caller:?}")
    }
    let server = Server::start(Router::new().route("/me", get(me))).await;
    let res = http_client().get(server.url("/me")).send().await.unwrap();
    assert_eq!(res.status(), 500);
    let body = res.text().await.unwrap();
    assert!(body.contains("route_layer(MandateLayer"), "{body}");
}

#[tokio::test]
async fn image_store_binary_accepts_pyjwt_tokens() {
    let user_iss = "https://users.pyjwt.test";
    let service_iss = "https://services.pyjwt.test";
    let minted = support::python(&[
        "tests/support/pyjwt_tokens.py",
        user_iss,
        service_iss,
        "image-store",
    ]);
    let minted: Value = serde_json::from_str(&minted).expect("PyJWT output");
    let dir = support::temp_dir("pyjwt");
    let user_jwks = dir.join("users.json");
    let service_jwks = dir.join("services.json");
    std::fs::write(&user_jwks, minted["user_jwks"].to_string()).unwrap();
    std::fs::write(&service_jwks, minted["service_jwks"].to_string()).unwrap();

    let server = support::Example::spawn(
        "image_store",
        &[
            ("USER_ISSUER", user_iss),
            ("USER_JWKS_FILE", user_jwks.to_str().unwrap()),
            ("SERVICE_ISSUER", service_iss),
            ("SERVICE_JWKS_FILE", service_jwks.to_str().unwrap()),
            ("ALGORITHMS", "RS256,PS256,ES256,EdDSA"),
        ],
    )
    .await;
    let client = http_client();
    let token = |name: &str| minted["tokens"][name].as_str().unwrap().to_owned();
    let (status, created) = server
        .call(
            &client,
            "POST",
            "/images",
            Some(&token("alice_rs256")),
            None,
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let path = format!("/images/{}", created["id"].as_str().unwrap());

    let cases: &[(&str, Option<&str>, u16)] = &[
        ("alice_rs256", None, 200),
        ("alice_es256", None, 200),
        ("alice_eddsa", None, 200),
        ("alice_ps256", None, 401), // the JWK pins alg RS256
        ("alice_float_exp", None, 200),
        ("alice_no_kid", None, 200), // no kid: exactly one key fits EdDSA
        ("bob_rs256", None, 403),
        ("alice_rs256", Some("service_archiver"), 200),
        ("alice_rs256", Some("service_weak"), 403),
        ("alice_rs256", Some("service_crit"), 401),
        ("expired", None, 401),
        ("not_yet_valid", None, 401),
        ("wrong_audience", None, 401),
        ("wrong_issuer", None, 401),
        ("exp_string", None, 401),
        ("no_exp", None, 401),
        ("alg_none", None, 401),
        ("weak_key", None, 401),
        ("enc_key", None, 401),
        ("hs256_with_public_key", None, 401),
        ("kid_swapped", None, 401),
    ];
    for (user, service, want) in cases {
        let service = service.map(token);
        let (status, body) = server
            .call(
                &client,
                "GET",
                &path,
                Some(&token(user)),
                service.as_deref(),
            )
            .await;
        assert_eq!(status.as_u16(), *want, "{user} + {service:?}: {body}");
    }
    let (status, _) = server
        .call(
            &client,
            "GET",
            &path,
            None,
            Some(&token("service_archiver")),
        )
        .await;
    assert_eq!(status, 200, "service alone with images:read:any");
}

#[tokio::test]
async fn embedded_mode_prints_working_tokens() {
    let server = support::Example::spawn("image_store", &[]).await;
    let alice = server.printed("ALICE=").expect("ALICE token printed");
    let service = server.printed("SERVICE=").expect("SERVICE token printed");
    let client = http_client();
    let (status, me) = server
        .call(&client, "GET", "/me", Some(&alice), Some(&service))
        .await;
    assert_eq!(status, 200);
    assert_eq!(me["user"]["sub"], "alice");
    assert_eq!(me["service"]["sub"], "archiver");
}

#[tokio::test]
async fn optional_caller_is_none_for_anonymous_requests() {
    use tower_mandate::{Issuer, MandateLayer, Slot, Verifier};
    async fn maybe(caller: Option<Caller>) -> String {
        caller.map_or("anonymous".into(), |c| {
            c.user().unwrap().subject().to_owned()
        })
    }
    let idp = tower_mandate::testing::TestIssuer::eddsa("https://id.example").with_audience("a");
    let verifier =
        Verifier::new([Issuer::new("https://id.example", "a").with_keys(idp.key_set())]).unwrap();
    let layer = MandateLayer::builder()
        .user(Slot::optional(verifier))
        .build()
        .unwrap();
    let server = Server::start(Router::new().route("/maybe", get(maybe)).route_layer(layer)).await;
    let client = http_client();
    let res = client.get(server.url("/maybe")).send().await.unwrap();
    assert_eq!(res.text().await.unwrap(), "anonymous");
    let token = idp.token("alice").sign();
    let res = client
        .get(server.url("/maybe"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "alice");
    // A bad token in an optional slot is still refused.
    let res = client
        .get(server.url("/maybe"))
        .header("authorization", "Bearer not.a.token")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn the_current_caller_is_set_for_the_handler_and_carried_by_spawn() {
    use tower_mandate::{Issuer, MandateLayer, Verifier};
    async fn who() -> String {
        let direct = Caller::current().map(|c| c.user().unwrap().subject().to_owned());
        let carried = tower_mandate::propagate::spawn(async {
            Caller::current().map(|c| c.user().unwrap().subject().to_owned())
        })
        .await
        .unwrap();
        let lost = tokio::spawn(async { Caller::current().is_some() })
            .await
            .unwrap();
        format!("{direct:?} {carried:?} {lost}")
    }
    let idp = tower_mandate::testing::TestIssuer::es256("https://id.example").with_audience("a");
    let verifier =
        Verifier::new([Issuer::new("https://id.example", "a").with_keys(idp.key_set())]).unwrap();
    let server = Server::start(
        Router::new()
            .route("/who", get(who))
            .route_layer(MandateLayer::new(verifier)),
    )
    .await;
    let res = http_client()
        .get(server.url("/who"))
        .header(
            "authorization",
            format!("Bearer {}", idp.token("alice").sign()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.text().await.unwrap(),
        r#"Some("alice") Some("alice") false"#
    );
}

#[tokio::test]
async fn a_subject_of_another_issuer_owns_nothing() {
    // One user slot trusts issuers A and B. alice@A uploads; B's "alice",
    // holding every permission image_store checks, can neither read nor
    // delete it, while alice@A can.
    use tower_mandate::testing::TestIssuer;
    use tower_mandate::{Issuer, MandateLayer, Slot, Verifier};
    let aud = app::DEFAULT_AUDIENCE;
    let a = TestIssuer::rs256("https://a.example").with_audience(aud);
    let b = TestIssuer::es256("https://b.example").with_audience(aud);
    let mapping = || {
        tower_mandate::permission::PermissionMapping::default()
            .with_permission_claims(["scope", "permissions"])
    };
    let users = Verifier::new([
        Issuer::new(a.issuer(), aud)
            .with_keys(a.key_set())
            .with_permissions(mapping()),
        Issuer::new(b.issuer(), aud)
            .with_keys(b.key_set())
            .with_permissions(mapping()),
    ])
    .unwrap();
    let server = Server::start(app::router(
        MandateLayer::builder()
            .user(Slot::required(users))
            .build()
            .unwrap(),
        None,
    ))
    .await;
    let client = http_client();
    let all = "images:read images:write images:delete";
    let alice_a = a.token("alice").scope(all).sign();
    let alice_b = b.token("alice").scope(all).sign();
    let (status, created) = server
        .call(&client, "POST", "/images", Some(&alice_a), None)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["owner"], "alice", "the answer keeps the subject");
    let path = format!("/images/{}", created["id"].as_str().unwrap());
    for method in ["GET", "DELETE"] {
        let (status, _) = server
            .call(&client, method, &path, Some(&alice_b), None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} by B's alice");
    }
    let (status, body) = server
        .call(&client, "GET", &path, Some(&alice_a), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = server
        .call(&client, "DELETE", &path, Some(&alice_a), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn every_refusal_of_a_service_uses_the_layers_renderer() {
    // The layer's own refusals, an extractor's, and a handler's AuthError
    // returned with `?` all come out of the one configured renderer, with
    // the AuthError in the response's extensions.
    use axum::http::HeaderMap;
    use tower_mandate::testing::TestIssuer;
    use tower_mandate::{AuthError, Issuer, MandateLayer, Require, Slot, Verifier, permission};
    permission! { Write = "images:write"; }
    async fn guarded(_: Require<Write>) -> &'static str {
        "written"
    }
    async fn owned(caller: Caller) -> Result<&'static str, AuthError> {
        let someone_else = tower_mandate::PrincipalId::new("https://id.example", "bob");
        caller.require_owner::<Write>(&someone_else)?;
        Ok("owned")
    }
    let idp = TestIssuer::es256("https://id.example").with_audience("a");
    let layer = MandateLayer::builder()
        .user(Slot::required(
            Verifier::new([Issuer::new(idp.issuer(), "a").with_keys(idp.key_set())]).unwrap(),
        ))
        .with_rejection(|e: &AuthError, _: &HeaderMap| {
            let mut r = axum::http::Response::new(format!("house style: {}", e.reason()));
            *r.status_mut() = e.status();
            r
        })
        .build()
        .unwrap();
    let server = Server::start(
        Router::new()
            .route("/guarded", get(guarded))
            .route("/owned", get(owned))
            .route_layer(layer),
    )
    .await;
    let client = http_client();
    let reader = idp.token("alice").scope("images:read").sign();
    let writer = idp.token("alice").scope("images:write").sign();
    for (path, token, status, body) in [
        ("/guarded", None, 401, "house style: no credentials"),
        (
            "/guarded",
            Some(&reader),
            403,
            "house style: permission missing",
        ),
        (
            "/owned",
            Some(&writer),
            403,
            "house style: permission missing",
        ),
    ] {
        let mut req = client.get(server.url(path));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{path}");
        assert_eq!(res.text().await.unwrap(), body, "{path}");
    }
    let res = client
        .get(server.url("/guarded"))
        .header("authorization", format!("Bearer {writer}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "written");
}

#[tokio::test]
async fn skipped_requests_carry_no_caller_and_guards_on_them_refuse() {
    use axum::routing::options;
    use tower_mandate::{Issuer, MandateLayer, Require, Slot, Verifier, permission};
    permission! { Read = "images:read"; }
    async fn maybe(caller: Option<Caller>) -> &'static str {
        if caller.is_some() {
            "someone"
        } else {
            "nobody"
        }
    }
    async fn guarded(_: Require<Read>) -> &'static str {
        "read"
    }
    let idp = tower_mandate::testing::TestIssuer::es256("https://id.example").with_audience("a");
    let verifier =
        Verifier::new([Issuer::new("https://id.example", "a").with_keys(idp.key_set())]).unwrap();
    let layer = MandateLayer::builder()
        .user(Slot::required(verifier))
        .add_skip_path_prefix("/public/")
        .add_skip_cors_preflight()
        .add_skip_if(|method, uri, _| method == http::Method::GET && uri.path() == "/version")
        .build()
        .unwrap();
    let app = Router::new()
        .route("/public/info", get(maybe))
        .route("/public/guarded", get(guarded))
        .route("/version", get(maybe).post(maybe))
        .route("/images", options(maybe).get(maybe))
        .route_layer(layer);
    let server = Server::start(app).await;
    let client = http_client();
    let send = |method: &str, path: &str, headers: &[(&str, &str)]| {
        let mut req = client.request(method.parse().unwrap(), server.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send()
    };
    let res = send("GET", "/public/info", &[]).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "nobody");
    // A guard on a skipped route refuses as for an anonymous caller.
    let res = send("GET", "/public/guarded", &[]).await.unwrap();
    assert_eq!(res.status(), 401);
    // The predicate: GET /version only.
    assert_eq!(send("GET", "/version", &[]).await.unwrap().status(), 200);
    assert_eq!(send("POST", "/version", &[]).await.unwrap().status(), 401);
    // A CORS preflight needs Origin and Access-Control-Request-Method.
    let preflight = [
        ("origin", "https://app.example"),
        ("access-control-request-method", "GET"),
    ];
    assert_eq!(
        send("OPTIONS", "/images", &preflight)
            .await
            .unwrap()
            .status(),
        200
    );
    let res = send("OPTIONS", "/images", &preflight[..1]).await.unwrap();
    assert_eq!(res.status(), 401, "a bare OPTIONS is not a preflight");
    assert_eq!(
        send("GET", "/images", &preflight).await.unwrap().status(),
        401
    );
    // With a token, a skipped path still has no caller: nothing is verified.
    let token = idp.token("alice").sign();
    let auth = format!("Bearer {token}");
    let res = send("GET", "/public/info", &[("authorization", auth.as_str())])
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "nobody");
}

#[tokio::test]
async fn one_provider_for_both_slots_told_apart_by_a_claim() {
    use tower_mandate::server::TokenSource;
    use tower_mandate::{Issuer, MandateLayer, Slot, Verifier};
    let idp =
        tower_mandate::testing::TestIssuer::rs256("https://login.example").with_audience("api");
    let rules = || {
        Verifier::new([Issuer::new("https://login.example", "api").with_keys(idp.key_set())])
            .unwrap()
    };
    // Without a rule, the shared issuer and audience are refused at build.
    assert!(matches!(
        MandateLayer::builder()
            .user(Slot::optional(rules()))
            .service(Slot::optional(rules()))
            .build(),
        Err(tower_mandate::ConfigError::InterchangeableSlots { .. })
    ));
    // A rule on one slot only does not tell them apart either.
    assert!(
        MandateLayer::builder()
            .user(Slot::optional(rules()))
            .service(Slot::optional(rules()).require_claim_eq("idtyp", "app"))
            .build()
            .is_err()
    );
    let layer = MandateLayer::builder()
        .user(
            Slot::optional(rules())
                .with_source(TokenSource::cookie("at"))
                .require_claim_eq("idtyp", "user"),
        )
        .service(Slot::optional(rules()).require_claim_eq("idtyp", "app"))
        .build()
        .unwrap();
    async fn who(caller: Caller) -> String {
        format!(
            "{}/{}",
            caller.user().map_or("-", |u| u.subject()),
            caller.service().map_or("-", |s| s.subject())
        )
    }
    let server = Server::start(Router::new().route("/who", get(who)).route_layer(layer)).await;
    let client = http_client();
    let user = idp
        .token("alice")
        .claim("idtyp", serde_json::json!("user"))
        .sign();
    let app = idp
        .token("svc")
        .claim("idtyp", serde_json::json!("app"))
        .sign();
    let neither = idp.token("carol").sign();
    let send = |cookie: Option<&str>, service: Option<&str>| {
        let mut req = client.get(server.url("/who"));
        if let Some(t) = cookie {
            req = req.header("cookie", format!("theme=dark; at={t}"));
        }
        if let Some(t) = service {
            req = req.header("service-authorization", format!("Bearer {t}"));
        }
        req.send()
    };
    let res = send(Some(&user), Some(&app)).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "alice/svc");
    // An app-only token in the user slot, a user token in the service slot.
    assert_eq!(send(Some(&app), None).await.unwrap().status(), 401);
    assert_eq!(send(None, Some(&user)).await.unwrap().status(), 401);
    // A token without the claim fits neither slot.
    assert_eq!(send(Some(&neither), None).await.unwrap().status(), 401);
    assert_eq!(send(None, Some(&neither)).await.unwrap().status(), 401);
    // The user's token in the Authorization header is not read: the slot reads the cookie.
    let res = client
        .get(server.url("/who"))
        .header("authorization", format!("Bearer {user}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn a_websocket_upgrade_token_from_the_query() {
    use tower_mandate::server::TokenSource;
    use tower_mandate::{Issuer, MandateLayer, Slot, Verifier};
    let idp = tower_mandate::testing::TestIssuer::es256("https://id.example").with_audience("a");
    let verifier =
        Verifier::new([Issuer::new("https://id.example", "a").with_keys(idp.key_set())]).unwrap();
    let layer = MandateLayer::builder()
        .user(Slot::required(verifier).with_source(TokenSource::insecure_query("access_token")))
        .build()
        .unwrap();
    async fn me(caller: Caller) -> String {
        caller.user().unwrap().subject().to_owned()
    }
    let server = Server::start(Router::new().route("/ws", get(me)).route_layer(layer)).await;
    let client = http_client();
    let token = idp.token("alice").sign();
    let res = client
        .get(server.url(&format!("/ws?room=1&access_token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "alice");
    let twice = format!("/ws?access_token={token}&access_token={token}");
    assert_eq!(
        client
            .get(server.url(&twice))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        client.get(server.url("/ws")).send().await.unwrap().status(),
        401
    );
}

#[tokio::test]
async fn permissions_from_the_application_once_per_token() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower_mandate::server::{Enrich, EnrichError, EnrichFuture};
    use tower_mandate::{Issuer, MandateLayer, Principal, Require, Slot, Verifier, permission};
    permission! { Delete = "images:delete"; }

    /// Grants from a "database"; counts how often it is asked, and fails
    /// for the subject `down`.
    struct Grants(Arc<AtomicUsize>);
    impl Enrich for Grants {
        fn permissions(&self, principal: &Principal) -> EnrichFuture {
            self.0.fetch_add(1, Ordering::SeqCst);
            let subject = principal.subject().to_owned();
            Box::pin(async move {
                tokio::task::yield_now().await; // a real wait, as a query would
                match subject.as_str() {
                    "down" => Err(EnrichError::new("database unreachable")),
                    "alice" => Ok(vec!["images:delete".to_owned()]),
                    _ => Ok(vec![]),
                }
            })
        }
    }
    async fn delete(caller: Require<Delete>) -> String {
        caller.user().unwrap().subject().to_owned()
    }
    let idp = tower_mandate::testing::TestIssuer::rs256("https://id.example").with_audience("a");
    let verifier =
        Verifier::new([Issuer::new("https://id.example", "a").with_keys(idp.key_set())]).unwrap();
    let asked = Arc::new(AtomicUsize::new(0));
    let layer = MandateLayer::builder()
        .user(Slot::required(verifier))
        .with_enrichment(Grants(asked.clone()))
        .build()
        .unwrap();
    let server = Server::start(Router::new().route("/x", get(delete)).route_layer(layer)).await;
    let client = http_client();
    let send = |token: String| {
        client
            .get(server.url("/x"))
            .header("authorization", format!("Bearer {token}"))
            .send()
    };
    let alice = idp.token("alice").sign();
    for _ in 0..3 {
        let res = send(alice.clone()).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), "alice");
    }
    assert_eq!(asked.load(Ordering::SeqCst), 1, "asked once per token");
    assert_eq!(send(idp.token("bob").sign()).await.unwrap().status(), 403);
    // A hook that fails refuses (503), never lets through.
    let res = send(idp.token("down").sign()).await.unwrap();
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    // A new token of alice's is asked again.
    assert_eq!(send(idp.token("alice").sign()).await.unwrap().status(), 200);
    assert_eq!(asked.load(Ordering::SeqCst), 4);
}
