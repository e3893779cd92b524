use std::convert::Infallible;

use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, Request, Response};
use tower_service::Service;

use super::*;
use crate::testing::TestIssuer;
use tower_layer::Layer;

use crate::{AuthError, AuthErrorKind, Caller, ConfigError, Issuer, MandateLayer, Slot, Verifier};

const AUD: &str = "image-store";

fn verifier(idp: &TestIssuer) -> Verifier {
    Verifier::new([Issuer::new(idp.issuer(), AUD).with_keys(idp.key_set())]).unwrap()
}

async fn echo(req: Request<String>) -> Result<Response<String>, Infallible> {
    let caller = req
        .extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or_default();
    let who = format!(
        "{}|{}",
        caller.user().map_or("-", |p| p.subject()),
        caller.service().map_or("-", |p| p.subject())
    );
    Ok(Response::new(who))
}

fn run(layer: &MandateLayer, headers: &[(&str, &str)]) -> Response<String> {
    let mut svc = layer.layer(tower::service_fn(echo));
    let mut req = Request::new(String::new());
    for (k, v) in headers {
        req.headers_mut().append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    futures_block_on(svc.call(req)).unwrap()
}

fn futures_block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn answers_follow_the_error_table() {
    let users = TestIssuer::rs256("https://users").with_audience(AUD);
    let services = TestIssuer::es256("https://services").with_audience(AUD);
    let layer = MandateLayer::builder()
        .user(Slot::optional(verifier(&users)))
        .service(Slot::optional(verifier(&services)))
        .build()
        .unwrap();
    let required = MandateLayer::new(verifier(&users));
    let user = format!("Bearer {}", users.token("alice").sign());
    let service = format!("Bearer {}", services.token("svc").sign());
    let expired = format!(
        "Bearer {}",
        users
            .token("alice")
            .expired_for(std::time::Duration::from_secs(3600))
            .sign()
    );
    struct Case<'a> {
        name: &'a str,
        layer: &'a MandateLayer,
        headers: Vec<(&'a str, &'a str)>,
        status: u16,
        body: Option<&'a str>,
        challenge: Option<&'a str>,
        kind: Option<AuthErrorKind>,
    }
    let cases = [
        Case {
            name: "both",
            layer: &layer,
            headers: vec![
                ("authorization", &user),
                ("service-authorization", &service),
            ],
            status: 200,
            body: Some("alice|svc"),
            challenge: None,
            kind: None,
        },
        Case {
            name: "service only",
            layer: &layer,
            headers: vec![("service-authorization", &service)],
            status: 200,
            body: Some("-|svc"),
            challenge: None,
            kind: None,
        },
        Case {
            name: "anonymous on optional slots",
            layer: &layer,
            headers: vec![],
            status: 200,
            body: Some("-|-"),
            challenge: None,
            kind: None,
        },
        Case {
            name: "missing on required slot",
            layer: &required,
            headers: vec![],
            status: 401,
            body: None,
            challenge: Some("Bearer"),
            kind: Some(AuthErrorKind::MissingCredentials),
        },
        Case {
            name: "basic scheme is no bearer credential",
            layer: &required,
            headers: vec![("authorization", "Basic dXNlcjpwYXNz")],
            status: 401,
            body: None,
            challenge: Some("Bearer"),
            kind: Some(AuthErrorKind::MissingCredentials),
        },
        Case {
            name: "expired",
            layer: &layer,
            headers: vec![("authorization", &expired)],
            status: 401,
            body: None,
            challenge: Some(r#"Bearer error="invalid_token", error_description="token expired""#),
            kind: Some(AuthErrorKind::InvalidToken),
        },
        Case {
            name: "user token in the service slot",
            layer: &layer,
            headers: vec![("service-authorization", &user)],
            status: 401,
            body: None,
            challenge: Some(
                r#"Bearer error="invalid_token", error_description="untrusted issuer""#,
            ),
            kind: Some(AuthErrorKind::InvalidToken),
        },
        Case {
            name: "duplicate user header",
            layer: &layer,
            headers: vec![("authorization", &user), ("authorization", &user)],
            status: 400,
            body: None,
            challenge: Some(
                r#"Bearer error="invalid_request", error_description="duplicate credentials""#,
            ),
            kind: Some(AuthErrorKind::InvalidRequest),
        },
        Case {
            name: "garbage",
            layer: &layer,
            headers: vec![("authorization", "Bearer abc")],
            status: 401,
            body: None,
            challenge: Some(r#"Bearer error="invalid_token", error_description="malformed token""#),
            kind: Some(AuthErrorKind::InvalidToken),
        },
    ];
    for case in cases {
        let res = run(case.layer, &case.headers);
        assert_eq!(res.status().as_u16(), case.status, "{}", case.name);
        if let Some(body) = case.body {
            assert_eq!(res.body(), body, "{}", case.name);
        }
        assert_eq!(
            res.headers()
                .get(WWW_AUTHENTICATE)
                .map(|v| v.to_str().unwrap()),
            case.challenge,
            "{}",
            case.name
        );
        assert_eq!(
            res.extensions().get::<AuthError>().map(AuthError::kind),
            case.kind,
            "{}",
            case.name
        );
        if case.status != 200 {
            assert!(
                !res.body().contains("eyJ"),
                "{}: body echoes a token",
                case.name
            );
        }
    }
}

#[test]
fn renderer_is_replaceable_and_error_stays_in_extensions() {
    let users = TestIssuer::rs256("https://users").with_audience(AUD);
    let layer = MandateLayer::builder()
        .user(Slot::required(verifier(&users)))
        .with_rejection(|e: &AuthError, _: &HeaderMap| {
            let mut r = Response::new(format!("nope: {}", e.reason()));
            *r.status_mut() = http::StatusCode::IM_A_TEAPOT;
            r
        })
        .build()
        .unwrap();
    let res = run(&layer, &[]);
    assert_eq!(res.status(), http::StatusCode::IM_A_TEAPOT);
    assert_eq!(res.body(), "nope: no credentials");
    assert_eq!(
        res.extensions().get::<AuthError>().map(AuthError::kind),
        Some(AuthErrorKind::MissingCredentials)
    );
}

#[test]
fn custom_sources() {
    let users = TestIssuer::rs256("https://users").with_audience(AUD);
    let layer = MandateLayer::builder()
        .user(
            Slot::required(verifier(&users)).with_source(TokenSource::raw_header(
                http::HeaderName::from_static("x-user-token"),
            )),
        )
        .build()
        .unwrap();
    let token = users.token("alice").sign();
    assert_eq!(run(&layer, &[("x-user-token", &token)]).body(), "alice|-");
    assert_eq!(
        run(&layer, &[("authorization", &format!("Bearer {token}"))]).status(),
        401
    );
}

#[test]
fn slots_must_not_be_interchangeable() {
    let idp = TestIssuer::rs256("https://shared").with_audience(AUD);
    let same = || Slot::optional(verifier(&idp));
    let err = MandateLayer::builder().user(same()).service(same()).build();
    assert!(matches!(err, Err(ConfigError::InterchangeableSlots { .. })));
    assert!(
        MandateLayer::builder()
            .user(same())
            .service(same())
            .insecure_allow_interchangeable_slots()
            .build()
            .is_ok()
    );
    // Distinct audiences make them distinguishable.
    let svc = Verifier::new([
        Issuer::new("https://shared", "image-store-internal").with_keys(idp.key_set())
    ])
    .unwrap();
    assert!(
        MandateLayer::builder()
            .user(same())
            .service(Slot::optional(svc))
            .build()
            .is_ok()
    );
    // Distinct typs too.
    let typed = |typ: &str| {
        Slot::optional(
            Verifier::new([Issuer::new("https://shared", AUD)
                .with_keys(idp.key_set())
                .require_typ(typ)])
            .unwrap(),
        )
    };
    assert!(
        MandateLayer::builder()
            .user(typed("at+jwt"))
            .service(typed("svc+jwt"))
            .build()
            .is_ok()
    );
    // Same header for both slots is refused.
    let svc = Verifier::new([Issuer::new("https://other", AUD).with_keys(idp.key_set())]).unwrap();
    assert!(
        MandateLayer::builder()
            .user(same())
            .service(Slot::optional(svc).with_source(TokenSource::authorization()))
            .build()
            .is_err()
    );
}

#[test]
fn services_are_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<MandateLayer>();
    assert_send_sync::<Mandate<crate::server::tests::Unit>>();
    assert_send_sync::<Verifier>();
    assert_send_sync::<Caller>();
}

#[derive(Clone)]
struct Unit;

#[test]
fn the_layer_asks_no_more_of_the_inner_service_than_clone() {
    // Neither the service nor the request body need be Send or 'static
    // (the bounds of tower-http's async authorization): here both hold an
    // Rc, and a refused request and an accepted one both complete.
    use std::rc::Rc;
    let users = TestIssuer::rs256("https://users").with_audience(AUD);
    let layer = MandateLayer::new(verifier(&users));
    let local = Rc::new("local");
    let mut svc = layer.layer(tower::service_fn(move |req: Request<Rc<()>>| {
        let local = local.clone();
        async move {
            let who = req
                .extensions()
                .get::<Caller>()
                .map(|c| c.user().unwrap().subject().to_owned());
            Ok::<_, Infallible>(Response::new(format!(
                "{local}:{}",
                who.unwrap_or_default()
            )))
        }
    }));
    let refused = futures_block_on(svc.call(Request::new(Rc::new(())))).unwrap();
    assert_eq!(refused.status(), 401);
    let mut req = Request::new(Rc::new(()));
    req.headers_mut().insert(
        http::header::AUTHORIZATION,
        format!("Bearer {}", users.token("alice").sign())
            .parse()
            .unwrap(),
    );
    let accepted = futures_block_on(svc.call(req)).unwrap();
    assert_eq!(accepted.body(), "local:alice");
}

#[test]
fn a_tenant_template_overlaps_its_own_tenants_issuer() {
    let idp = TestIssuer::rs256("https://login.example/contoso/v2.0");
    let template = Verifier::new([
        Issuer::for_tenants("https://login.example/{tid}/v2.0", AUD).with_keys(idp.key_set())
    ])
    .unwrap();
    let concrete = Verifier::new([
        Issuer::new("https://login.example/contoso/v2.0", AUD).with_keys(idp.key_set())
    ])
    .unwrap();
    let err = MandateLayer::builder()
        .user(Slot::optional(template))
        .service(Slot::optional(concrete))
        .build();
    assert!(matches!(err, Err(ConfigError::InterchangeableSlots { .. })));
}
