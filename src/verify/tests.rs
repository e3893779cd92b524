use std::time::Duration;

use serde_json::json;

use super::*;
use crate::clock::unix_now;
use crate::mint::SigningKey;
use crate::testing::TestIssuer;
use crate::{
    keys::{Algorithm, KeySet},
    permission::PermissionMapping,
};

const ISS: &str = "https://id.example";
const AUD: &str = "image-store";

fn verifier_for(idp: &TestIssuer, tweak: impl FnOnce(Issuer) -> Issuer) -> Verifier {
    Verifier::new([tweak(Issuer::new(ISS, AUD).with_keys(idp.key_set()))]).unwrap()
}

#[test]
fn every_rule() {
    struct Case {
        name: &'static str,
        token: String,
        /// `None`: accepted; `Some(reason)`: refused with that reason.
        want: Option<&'static str>,
    }
    let idp = TestIssuer::rs256(ISS).with_audience(AUD);
    let forger = SigningKey::generate(Algorithm::RS256, "key-1");
    let hour = Duration::from_secs(3600);
    let t = || idp.token("alice");
    let cases = vec![
        Case {
            name: "valid",
            token: t().sign(),
            want: None,
        },
        Case {
            name: "aud in array",
            token: t().claim("aud", json!(["other", AUD])).sign(),
            want: None,
        },
        Case {
            name: "aud other",
            token: t().audience("other").sign(),
            want: Some("audience mismatch"),
        },
        Case {
            name: "aud substring",
            token: t().audience("image").sign(),
            want: Some("audience mismatch"),
        },
        Case {
            name: "aud empty",
            token: t().audience("").sign(),
            want: Some("audience mismatch"),
        },
        Case {
            name: "aud empty array",
            token: t().claim("aud", json!([])).sign(),
            want: Some("audience mismatch"),
        },
        Case {
            name: "aud number",
            token: t().claim("aud", json!(5)).sign(),
            want: Some("claim of wrong type"),
        },
        Case {
            name: "aud array with number",
            token: t().claim("aud", json!([AUD, 5])).sign(),
            want: Some("claim of wrong type"),
        },
        Case {
            name: "aud missing",
            token: t().without_claim("aud").sign(),
            want: Some("missing aud"),
        },
        Case {
            name: "forged",
            token: t().sign_with(&forger),
            want: Some("bad signature"),
        },
        Case {
            name: "expired",
            token: t().expired_for(hour).sign(),
            want: Some("token expired"),
        },
        Case {
            name: "expired within leeway",
            token: t().expired_for(Duration::from_secs(30)).sign(),
            want: None,
        },
        Case {
            name: "exp missing",
            token: t().without_claim("exp").sign(),
            want: Some("missing exp"),
        },
        Case {
            name: "exp string",
            token: t().claim("exp", json!("4000000000")).sign(),
            want: Some("claim of wrong type"),
        },
        Case {
            name: "exp bool",
            token: t().claim("exp", json!(true)).sign(),
            want: Some("claim of wrong type"),
        },
        Case {
            name: "exp null",
            token: t().claim("exp", json!(null)).sign(),
            want: Some("claim of wrong type"),
        },
        Case {
            name: "exp negative",
            token: t().claim("exp", json!(-1)).sign(),
            want: Some("date claim out of range"),
        },
        Case {
            name: "exp huge",
            token: t().claim("exp", json!(1e300)).sign(),
            want: Some("date claim out of range"),
        },
        Case {
            name: "exp float",
            token: t().claim("exp", json!(unix_now() as f64 + 120.5)).sign(),
            want: None,
        },
        Case {
            name: "nbf future",
            token: t().not_before_in(hour).sign(),
            want: Some("token not yet valid"),
        },
        Case {
            name: "nbf within leeway",
            token: t().not_before_in(Duration::from_secs(30)).sign(),
            want: None,
        },
        Case {
            name: "nbf string",
            token: t().claim("nbf", json!("1")).sign(),
            want: Some("claim of wrong type"),
        },
        Case {
            name: "iat future",
            token: t().claim("iat", json!(unix_now() + 3600)).sign(),
            want: Some("token issued in the future"),
        },
        Case {
            name: "iat string",
            token: t().claim("iat", json!("x")).sign(),
            want: Some("claim of wrong type"),
        },
        Case {
            name: "iss other",
            token: t().claim("iss", json!("https://evil.example")).sign(),
            want: Some("untrusted issuer"),
        },
        Case {
            name: "iss trailing slash",
            token: t().claim("iss", json!("https://id.example/")).sign(),
            want: Some("untrusted issuer"),
        },
        Case {
            name: "iss case",
            token: t().claim("iss", json!("https://ID.example")).sign(),
            want: Some("untrusted issuer"),
        },
        Case {
            name: "iss substring",
            token: t().claim("iss", json!("https://id.exampl")).sign(),
            want: Some("untrusted issuer"),
        },
        Case {
            name: "iss number",
            token: t().claim("iss", json!(1)).sign(),
            want: Some("claim of wrong type"),
        },
        Case {
            name: "iss missing",
            token: t().without_claim("iss").sign(),
            want: Some("missing iss"),
        },
        Case {
            name: "sub missing",
            token: t().without_claim("sub").sign(),
            want: Some("missing sub"),
        },
        Case {
            name: "sub number",
            token: t().claim("sub", json!(7)).sign(),
            want: Some("claim of wrong type"),
        },
        Case {
            name: "jti number",
            token: t().claim("jti", json!(7)).sign(),
            want: Some("claim of wrong type"),
        },
        Case {
            name: "scope array",
            token: t().claim("scope", json!(["a"])).sign(),
            want: Some("claim of wrong type"),
        },
        Case {
            name: "unknown kid",
            token: t().header("kid", json!("nope")).sign(),
            want: Some("unknown key"),
        },
        Case {
            name: "kid number",
            token: t().header("kid", json!(1)).sign(),
            want: Some("malformed header"),
        },
        Case {
            name: "kid path traversal",
            token: t().header("kid", json!("../../dev/null")).sign(),
            want: Some("unknown key"),
        },
        Case {
            name: "no kid, one key",
            token: t().without_header("kid").sign(),
            want: None,
        },
        Case {
            name: "alg none",
            token: t().unsigned(),
            want: Some("malformed token"),
        },
        Case {
            name: "alg none with signature",
            token: format!("{}x", t().unsigned()),
            want: Some("algorithm not allowed"),
        },
        Case {
            name: "alg ES256 on RSA key",
            token: t().header("alg", json!("ES256")).sign(),
            want: Some("key does not allow algorithm"),
        },
        Case {
            name: "alg HS256 not allowed",
            token: t().header("alg", json!("HS256")).sign(),
            want: Some("algorithm not allowed"),
        },
        Case {
            name: "act chain",
            token: t().actor("svc-a").actor("svc-b").sign(),
            want: None,
        },
        Case {
            name: "act too deep",
            token: (0..6).fold(t(), |b, i| b.actor(&format!("svc-{i}"))).sign(),
            want: Some("actor chain too deep"),
        },
        Case {
            name: "act not object",
            token: t().claim("act", json!("svc")).sign(),
            want: Some("claim of wrong type"),
        },
        Case {
            name: "act without sub",
            token: t().claim("act", json!({"iss": "x"})).sign(),
            want: Some("claim of wrong type"),
        },
        Case {
            name: "too large",
            token: t().claim("pad", json!("x".repeat(9000))).sign(),
            want: Some("token too large"),
        },
    ];
    let v = verifier_for(&idp, |i| i);
    for case in cases {
        let got = v.verify(&case.token).err().map(|e| e.reason());
        assert_eq!(got, case.want, "{}", case.name);
    }
}

#[test]
fn key_confusion_hmac_with_public_key_is_refused() {
    // The classic attack: sign HS256 with the RSA public key as the secret.
    let idp = TestIssuer::rs256(ISS).with_audience(AUD);
    let pem = idp.current_key().public_pem();
    let confused = SigningKey::hmac(Algorithm::HS256, "key-1", pem.as_bytes());
    let token = idp
        .token("alice")
        .header("alg", json!("HS256"))
        .sign_with(&confused);
    let v = verifier_for(&idp, |i| i);
    assert_eq!(
        v.verify(&token).unwrap_err().reason(),
        "algorithm not allowed"
    );
    // Even with HS256 allowed, an RSA key never verifies HMAC.
    let both = Verifier::new([Issuer::new(ISS, AUD)
        .with_keys(idp.key_set().add_hmac_secret(Some("h"), [1u8; 32]).unwrap())
        .with_algorithms([Algorithm::RS256, Algorithm::HS256])])
    .unwrap();
    assert_eq!(
        both.verify(&token).unwrap_err().reason(),
        "key does not allow algorithm"
    );
}

#[test]
fn every_algorithm_verifies() {
    for alg in Algorithm::ALL {
        let idp = TestIssuer::new(ISS, SigningKey::generate(alg, "k")).with_audience(AUD);
        let v = verifier_for(&idp, |i| i.with_algorithms([alg]));
        let p = v.verify(&idp.token("alice").sign());
        assert!(p.is_ok(), "{alg}: {p:?}");
    }
}

#[test]
fn typ_and_required_claims() {
    let idp = TestIssuer::es256(ISS).with_audience(AUD);
    let v = verifier_for(&idp, |i| i.require_typ("at+jwt").require_claim("client_id"));
    let ok = idp
        .token("a")
        .header("typ", json!("at+jwt"))
        .claim("client_id", json!("c"))
        .sign();
    assert!(v.verify(&ok).is_ok());
    let media = idp
        .token("a")
        .header("typ", json!("application/AT+JWT"))
        .claim("client_id", json!("c"))
        .sign();
    assert!(v.verify(&media).is_ok(), "media type form");
    let plain = idp.token("a").claim("client_id", json!("c")).sign();
    assert_eq!(v.verify(&plain).unwrap_err().reason(), "wrong token type");
    let missing = idp.token("a").header("typ", json!("at+jwt")).sign();
    assert_eq!(
        v.verify(&missing).unwrap_err().reason(),
        "missing required claim"
    );
}

#[test]
fn tokens_of_another_kind_are_refused() {
    struct Case {
        typ: Option<&'static str>,
        ok: bool,
    }
    let idp = TestIssuer::es256(ISS).with_audience(AUD);
    let v = verifier_for(&idp, |i| i);
    let cases = [
        Case {
            typ: None,
            ok: true,
        },
        Case {
            typ: Some("JWT"),
            ok: true,
        },
        Case {
            typ: Some("jwt"),
            ok: true,
        },
        Case {
            typ: Some("at+jwt"),
            ok: true,
        },
        Case {
            typ: Some("application/at+JWT"),
            ok: true,
        },
        Case {
            typ: Some("secevent+jwt"),
            ok: false,
        },
        Case {
            typ: Some("application/secevent+jwt"),
            ok: false,
        },
        Case {
            typ: Some("logout+jwt"),
            ok: false,
        },
        Case {
            typ: Some("dpop+jwt"),
            ok: false,
        },
        Case {
            typ: Some("txntoken+jwt"),
            ok: false,
        },
        Case {
            typ: Some("wit+jwt"),
            ok: false,
        },
        Case {
            typ: Some("wpt+jwt"),
            ok: false,
        },
        Case {
            typ: Some("JOSE+JSON"),
            ok: false,
        },
        Case {
            typ: Some(""),
            ok: false,
        },
        Case {
            typ: Some("application/"),
            ok: false,
        },
    ];
    for c in cases {
        let mut token = idp.token("a");
        if let Some(typ) = c.typ {
            token = token.header("typ", json!(typ));
        }
        let got = v.verify(&token.sign());
        match c.ok {
            true => assert!(got.is_ok(), "{:?}: {got:?}", c.typ),
            false => assert_eq!(
                got.unwrap_err().reason(),
                "token of another kind",
                "{:?}",
                c.typ
            ),
        }
    }
    // A slot that asks for a kind gets that kind only.
    let set = verifier_for(&idp, |i| i.require_typ("secevent+jwt"));
    assert!(
        set.verify(&idp.token("a").header("typ", json!("secevent+jwt")).sign())
            .is_ok()
    );
    assert!(set.verify(&idp.token("a").sign()).is_err());
}

#[test]
fn issuers_with_a_fragment_are_refused() {
    let idp = TestIssuer::es256("https://id.example#x").with_audience(AUD);
    let err = Verifier::new([Issuer::new("https://id.example#x", AUD).with_keys(idp.key_set())])
        .unwrap_err();
    assert!(err.to_string().contains("fragment"), "{err}");
}

#[test]
fn several_issuers_use_their_own_keys() {
    let a = TestIssuer::rs256("https://a.example").with_audience(AUD);
    let b = TestIssuer::eddsa("https://b.example").with_audience(AUD);
    let v = Verifier::new([
        Issuer::new("https://a.example", AUD).with_keys(a.key_set()),
        Issuer::new("https://b.example", AUD).with_keys(b.key_set()),
    ])
    .unwrap();
    assert_eq!(
        v.verify(&a.token("x").sign()).unwrap().issuer(),
        "https://a.example"
    );
    assert_eq!(
        v.verify(&b.token("y").sign()).unwrap().issuer(),
        "https://b.example"
    );
    // b's key signing a token that claims to come from a: a's keys are used, so it fails.
    let cross = a
        .token("x")
        .header("alg", json!("EdDSA"))
        .sign_with(&b.current_key());
    assert!(v.verify(&cross).is_err());
}

#[test]
fn config_errors() {
    let idp = TestIssuer::rs256(ISS);
    struct Case {
        name: &'static str,
        issuers: Vec<Issuer>,
    }
    let cases = [
        Case {
            name: "none",
            issuers: vec![],
        },
        Case {
            name: "no keys",
            issuers: vec![Issuer::new(ISS, AUD)],
        },
        Case {
            name: "empty audience",
            issuers: vec![Issuer::new(ISS, "").with_keys(idp.key_set())],
        },
        Case {
            name: "empty issuer",
            issuers: vec![Issuer::new("", AUD).with_keys(idp.key_set())],
        },
        Case {
            name: "no usable algorithm",
            issuers: vec![
                Issuer::new(ISS, AUD)
                    .with_keys(idp.key_set())
                    .with_algorithms([Algorithm::ES256]),
            ],
        },
        Case {
            name: "hmac without secret",
            issuers: vec![
                Issuer::new(ISS, AUD)
                    .with_keys(idp.key_set())
                    .with_algorithms([Algorithm::RS256, Algorithm::HS256]),
            ],
        },
        Case {
            name: "twice",
            issuers: vec![
                Issuer::new(ISS, AUD).with_keys(idp.key_set()),
                Issuer::new(ISS, AUD).with_keys(idp.key_set()),
            ],
        },
    ];
    for case in cases {
        assert!(Verifier::new(case.issuers).is_err(), "{}", case.name);
    }
    assert!(
        KeySet::new().add_hmac_secret(None, [0u8; 31]).is_err(),
        "short secret"
    );
}

#[test]
fn permissions_and_claims_reach_the_principal() {
    let idp = TestIssuer::rs256(ISS).with_audience(AUD);
    let v = verifier_for(&idp, |i| {
        i.with_permissions(
            PermissionMapping::default()
                .with_role_claims(["/realm_access/roles"])
                .add_role("admin", ["images:read:any"]),
        )
    });
    let token = idp
        .token("alice")
        .scope("images:read images:write")
        .permissions(["tags:write"])
        .claim("realm_access", json!({"roles": ["admin"]}))
        .claim("tenant", json!("t1"))
        .actor("svc")
        .sign();
    let p = v.verify(&token).unwrap();
    assert_eq!(
        p.permissions().iter().collect::<Vec<_>>(),
        [
            "images:read",
            "images:read:any",
            "images:write",
            "tags:write"
        ]
    );
    assert_eq!(p.claim("tenant"), Some(&json!("t1")));
    assert_eq!(p.actors()[0].subject(), "svc");
    assert_eq!(p.token(), token);
    assert!(p.token_id().is_some());
}

#[test]
fn pem_keys() {
    for alg in [
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ] {
        let key = SigningKey::generate(alg, "k");
        let pem = key.public_pem();
        let idp = TestIssuer::new(ISS, key).with_audience(AUD);
        let keys = KeySet::new().add_pem(Some("k"), &pem).unwrap();
        let v =
            Verifier::new([Issuer::new(ISS, AUD).with_keys(keys).with_algorithms([alg])]).unwrap();
        assert!(v.verify(&idp.token("a").sign()).is_ok(), "{alg}");
        let pinned = KeySet::new().add_pem_for(Some("k"), alg, &pem).unwrap();
        assert_eq!(pinned.algorithms().iter().collect::<Vec<_>>(), [alg]);
    }
    assert!(KeySet::new().add_pem(None, "not a pem").is_err());
}

#[test]
fn may_act_names_the_current_actor() {
    let idp = TestIssuer::rs256(ISS).with_audience(AUD);
    let v = verifier_for(&idp, |i| i.require_may_act());
    struct Case {
        name: &'static str,
        token: String,
        ok: bool,
    }
    let t = || idp.token("alice");
    let cases = [
        Case {
            name: "not delegated",
            token: t().sign(),
            ok: true,
        },
        Case {
            name: "allowed",
            token: t()
                .actor("relay")
                .claim("may_act", json!({"sub": "relay"}))
                .sign(),
            ok: true,
        },
        Case {
            name: "other actor",
            token: t()
                .actor("mallory")
                .claim("may_act", json!({"sub": "relay"}))
                .sign(),
            ok: false,
        },
        Case {
            name: "no may_act",
            token: t().actor("relay").sign(),
            ok: false,
        },
        Case {
            name: "issuer differs",
            token: t()
                .actor("relay")
                .claim("may_act", json!({"sub": "relay", "iss": "x"}))
                .sign(),
            ok: false,
        },
        Case {
            name: "wrong type",
            token: t().actor("relay").claim("may_act", json!("relay")).sign(),
            ok: false,
        },
        Case {
            name: "an actor of another issuer, may_act without iss",
            token: t()
                .claim(
                    "act",
                    json!({"sub": "relay", "iss": "https://evil.example"}),
                )
                .claim("may_act", json!({"sub": "relay"}))
                .sign(),
            ok: false,
        },
        Case {
            name: "may_act names the token's own issuer, act none",
            token: t()
                .actor("relay")
                .claim("may_act", json!({"sub": "relay", "iss": ISS}))
                .sign(),
            ok: true,
        },
        Case {
            name: "both name the same other issuer",
            token: t()
                .claim(
                    "act",
                    json!({"sub": "relay", "iss": "https://mesh.example"}),
                )
                .claim(
                    "may_act",
                    json!({"sub": "relay", "iss": "https://mesh.example"}),
                )
                .sign(),
            ok: true,
        },
        Case {
            name: "an actor issuer with a fragment",
            token: t()
                .claim(
                    "act",
                    json!({"sub": "relay", "iss": "https://mesh.example#x"}),
                )
                .claim(
                    "may_act",
                    json!({"sub": "relay", "iss": "https://mesh.example#x"}),
                )
                .sign(),
            ok: false,
        },
    ];
    for c in cases {
        assert_eq!(v.verify(&c.token).is_ok(), c.ok, "{}", c.name);
    }
    // Off by default.
    let plain = verifier_for(&idp, |i| i);
    assert!(plain.verify(&t().actor("relay").sign()).is_ok());
}

#[test]
fn cache_settings_survive_other_settings() {
    let idp = TestIssuer::rs256(ISS).with_audience(AUD);
    let rules = || [Issuer::new(ISS, AUD).with_keys(idp.key_set())];
    let v = Verifier::builder(rules())
        .with_cache(5)
        .with_max_token_len(4096)
        .build()
        .unwrap();
    assert_eq!(v.cache_capacity(), Some(5));
    let off = Verifier::builder(rules())
        .with_cache(5)
        .without_cache()
        .with_max_token_len(100)
        .build()
        .unwrap();
    assert_eq!(off.cache_capacity(), None);
    assert!(
        off.verify(&idp.token("a").sign()).is_err(),
        "over 100 bytes"
    );
    assert_eq!(
        verifier_for(&idp, |i| i).cache_capacity(),
        Some(DEFAULT_CACHE_CAPACITY)
    );
}

#[test]
fn claim_rules_audience_claim_and_claims_check() {
    let idp = TestIssuer::rs256(ISS);
    // Cognito: no aud; the app client in client_id; token_use must be access.
    let cognito = Verifier::new([Issuer::new(ISS, "4ivt1vbn1example")
        .with_keys(idp.key_set())
        .with_audience_claim("client_id")
        .require_claim_eq("token_use", "access")])
    .unwrap();
    let access = idp
        .token("alice")
        .without_claim("aud")
        .claim("client_id", json!("4ivt1vbn1example"))
        .claim("token_use", json!("access"))
        .sign();
    assert!(cognito.verify(&access).is_ok());
    let cases = [
        (
            "an ID token",
            json!("id"),
            json!("4ivt1vbn1example"),
            "claim value not allowed",
        ),
        (
            "another app client",
            json!("access"),
            json!("other"),
            "audience mismatch",
        ),
        (
            "client_id of the wrong type",
            json!("access"),
            json!(7),
            "claim of wrong type",
        ),
    ];
    for (name, token_use, client_id, reason) in cases {
        let token = idp
            .token("alice")
            .without_claim("aud")
            .claim("client_id", client_id)
            .claim("token_use", token_use)
            .sign();
        assert_eq!(
            cognito.verify(&token).unwrap_err().reason(),
            reason,
            "{name}"
        );
    }
    let no_use = idp
        .token("alice")
        .without_claim("aud")
        .claim("client_id", json!("4ivt1vbn1example"))
        .sign();
    assert_eq!(
        cognito.verify(&no_use).unwrap_err().reason(),
        "missing required claim"
    );
    // An allow-list of values.
    let azp = verifier_for(&idp, |i| i.require_claim_in("azp", ["web", "mobile"]));
    let t_for = |idp: &TestIssuer| idp.token("alice").audience(AUD);
    let with_azp = |v: &str| t_for(&idp).claim("azp", json!(v)).sign();
    assert!(azp.verify(&with_azp("mobile")).is_ok());
    assert!(azp.verify(&with_azp("cli")).is_err());
    // Tenants need a template; a placeholder needs for_tenants.
    assert!(
        Verifier::new([Issuer::new(ISS, AUD)
            .with_keys(idp.key_set())
            .with_tenants(["t"])])
        .is_err()
    );
    assert!(
        Verifier::new([
            Issuer::new("https://login.example/{tid}/v2.0", AUD).with_keys(idp.key_set())
        ])
        .is_err()
    );
    // A token whose iss is the template itself is no tenant's.
    let template = "https://login.example/{tid}/v2.0";
    let tenants =
        Verifier::new([Issuer::for_tenants(template, AUD).with_keys(idp.key_set())]).unwrap();
    let literal = t_for(&idp)
        .claim("iss", json!(template))
        .claim("tid", json!("{tid}"))
        .sign();
    assert_eq!(
        tenants.verify(&literal).unwrap_err().reason(),
        "untrusted issuer"
    );
    let real = t_for(&idp)
        .claim("iss", json!("https://login.example/contoso/v2.0"))
        .claim("tid", json!("contoso"))
        .sign();
    let principal = tenants.verify(&real).unwrap();
    assert_eq!(principal.issuer(), "https://login.example/contoso/v2.0");
    let mismatch = t_for(&idp)
        .claim("iss", json!("https://login.example/contoso/v2.0"))
        .claim("tid", json!("fabrikam"))
        .sign();
    assert!(tenants.verify(&mismatch).is_err());
}

#[test]
fn bound_tokens_need_their_proof_outside_the_layer() {
    let idp = TestIssuer::es256("https://id.example");
    let v = Verifier::new([Issuer::new(idp.issuer(), "a").with_keys(idp.key_set())]).unwrap();
    let jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
    for cnf in [json!({ "jkt": jkt }), json!({ "x5t#S256": jkt })] {
        let token = idp
            .token("alice")
            .audience("a")
            .claim("cnf", cnf.clone())
            .sign();
        let e = v.verify(&token).unwrap_err();
        assert!(
            e.reason().contains("without its proof"),
            "{cnf}: {}",
            e.reason()
        );
        let e = futures_lite_block(v.verify_async(&token)).unwrap_err();
        assert!(e.reason().contains("without its proof"), "{cnf}");
        // verify_bound hands it out, binding and all, for the caller to check.
        let p = v.verify_bound(&token).unwrap();
        assert!(p.confirmation().is_some());
    }
    // An unsupported confirmation method refuses the token outright.
    let token = idp
        .token("alice")
        .audience("a")
        .claim("cnf", json!({ "jwk": { "kty": "EC" } }))
        .sign();
    assert_eq!(
        v.verify_bound(&token).unwrap_err().reason(),
        "unsupported token binding"
    );
}

/// Poll a future that is ready at once (no key fetch involved).
fn futures_lite_block<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let waker = std::task::Waker::noop();
    match f.as_mut().poll(&mut std::task::Context::from_waker(waker)) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => panic!("not ready at once"),
    }
}

#[test]
fn an_issuer_without_iss_takes_only_tokens_without_iss() {
    let tts = TestIssuer::es256("https://ignored");
    let mut issuer = Issuer::new("urn:txn-token-service:d", "d").with_keys(tts.key_set());
    issuer.without_iss = true;
    let v = Verifier::new([issuer]).unwrap();
    let token = tts.token("alice").audience("d").without_claim("iss").sign();
    assert_eq!(
        v.verify(&token).unwrap().issuer(),
        "urn:txn-token-service:d"
    );
    // A token naming any issuer, even this one's name, is not this issuer's.
    let named = tts
        .token("alice")
        .audience("d")
        .claim("iss", json!("urn:txn-token-service:d"))
        .sign();
    assert_eq!(v.verify(&named).unwrap_err().reason(), "untrusted issuer");
    // An ordinary issuer still needs `iss`.
    let plain =
        Verifier::new([Issuer::new("https://ignored", "d").with_keys(tts.key_set())]).unwrap();
    assert_eq!(plain.verify(&token).unwrap_err().reason(), "missing iss");
}
