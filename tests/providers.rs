//! Real identity providers' token shapes (Cognito, Entra ID v1 and v2,
//! Keycloak, Auth0, Google, Okta), as their public documentation shows
//! them, minted by PyJWT (`tests/support/provider_tokens.py`) and verified
//! by the image_store example — a real axum server — configured through
//! `MANDATE_CONFIG` with the provider presets. None of these providers can
//! run here; the shapes are the documented ones.

mod support;

use std::collections::HashMap;

/// The file from the "Real identity providers" issue, verbatim but for
/// the paths.
const ISSUE_FILE: &str = r#"
[[user.issuers]]
preset = "cognito"
issuer = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example"
client_ids = ["4ivt1vbn1example"]
jwks_file = "{dir}/cognito-jwks.json"
[user.issuers.role_permissions]
image-editors = ["images:read", "images:write"]     # from cognito:groups

[[user.issuers]]
preset = "entra"
tenants = ["72f988bf-86f1-41af-91ab-2d7cd011db47"]   # or tenants = "any"
audiences = ["api://image-store"]
jwks_file = "{dir}/entra-jwks.json"

[[user.issuers]]
preset = "auth0"
issuer = "https://example.eu.auth0.com/"
audiences = ["https://images.example.com"]
role_claims = ["https://images.example.com/roles"]

[[user.issuers]]
preset = "keycloak"
issuer = "https://kc.example.com/realms/main"
client_id = "image-store"
jwks_file = "{dir}/keycloak-jwks.json"
"#;

/// The other presets, with keys from files and role tables.
const MORE_FILE: &str = r#"
[[user.issuers]]
preset = "auth0"
issuer = "https://example.eu.auth0.com/"
audiences = ["https://images.example.com"]
role_claims = ["https://images.example.com/roles"]
jwks_file = "{dir}/auth0-jwks.json"
[user.issuers.role_permissions]
editor = ["images:write"]

[[user.issuers]]
preset = "google"
audiences = ["1234987819200.apps.googleusercontent.com"]
jwks_file = "{dir}/google-jwks.json"

[[user.issuers]]
preset = "okta"
issuer = "https://example.okta.com/oauth2/default"
audiences = ["api://default"]
jwks_file = "{dir}/okta-jwks.json"
[user.issuers.role_permissions]
image-editors = ["images:write"]

[[user.issuers]]
preset = "entra"
tenants = ["72f988bf-86f1-41af-91ab-2d7cd011db47", "f8cdef31-a31e-4b4a-93e4-5f571e91255a"]
audiences = ["api://image-store"]
jwks_file = "{dir}/entra-jwks.json"
[user.issuers.role_permissions]
"Images.Reader" = ["images:read"]
"#;

fn tokens(dir: &std::path::Path) -> HashMap<String, String> {
    let out = support::python(&["tests/support/provider_tokens.py", dir.to_str().unwrap()]);
    serde_json::from_str(&out).unwrap()
}

async fn store(dir: &std::path::Path, name: &str, text: &str) -> support::Example {
    let file = dir.join(name);
    std::fs::write(&file, text.replace("{dir}", dir.to_str().unwrap())).unwrap();
    support::Example::spawn("image_store", &[("MANDATE_CONFIG", file.to_str().unwrap())]).await
}

#[tokio::test]
async fn the_issue_file_with_cognito_entra_auth0_and_keycloak() {
    let dir = support::temp_dir("providers");
    let t = tokens(&dir);
    let store = store(&dir, "issue.toml", ISSUE_FILE).await;
    let client = support::http_client();
    let call = |method: &'static str, path: String, token: &str| {
        let token = token.to_owned();
        let store = &store;
        let client = &client;
        async move { store.call(client, method, &path, Some(&token), None).await }
    };

    // Cognito: the access token passes; its group grants write.
    let (status, created) = call("POST", "/images".into(), &t["cognito_access"]).await;
    assert_eq!(status, 201, "{created}");
    let image = format!("/images/{}", created["id"].as_str().unwrap());
    assert_eq!(
        call("GET", image.clone(), &t["cognito_access"]).await.0,
        200
    );
    // An ID token (token_use id, aud instead of client_id) and another app
    // client are refused.
    assert_eq!(call("GET", "/me".into(), &t["cognito_id"]).await.0, 401);
    assert_eq!(
        call("GET", "/me".into(), &t["cognito_other_client"])
            .await
            .0,
        401
    );

    // Entra ID: v2 and v1 tokens of the allowed tenant.
    let (status, me) = call("GET", "/me".into(), &t["entra_v2"]).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        me["user"]["sub"],
        "HKZpfaHyWadeOouYlitjrI-KffTm222X5rrV3xDqfKQ"
    );
    assert_eq!(call("GET", "/me".into(), &t["entra_v1"]).await.0, 200);
    // Another tenant, and an allowed tenant's iss with another tid.
    assert_eq!(
        call("GET", "/me".into(), &t["entra_other_tenant"]).await.0,
        401
    );
    assert_eq!(
        call("GET", "/me".into(), &t["entra_tid_mismatch"]).await.0,
        401
    );
    // The scp of Entra is not one of image_store's permissions.
    assert_eq!(call("POST", "/images".into(), &t["entra_v2"]).await.0, 403);

    // Keycloak: the access token (typ Bearer) passes, its ID token does not.
    let (status, me) = call("GET", "/me".into(), &t["keycloak_access"]).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(call("GET", "/me".into(), &t["keycloak_id"]).await.0, 401);
    // A Cognito token's owner is not Keycloak's user of another issuer.
    assert_eq!(call("GET", image, &t["keycloak_access"]).await.0, 403);
}

#[tokio::test]
async fn auth0_google_okta_and_entra_roles() {
    let dir = support::temp_dir("providers-more");
    let t = tokens(&dir);
    let store = store(&dir, "more.toml", MORE_FILE).await;
    let client = support::http_client();
    let call = |method: &'static str, path: &'static str, token: &str| {
        let token = token.to_owned();
        let store = &store;
        let client = &client;
        async move { store.call(client, method, path, Some(&token), None).await }
    };
    // Auth0: the namespaced role claim maps through the role table.
    let (status, body) = call("POST", "/images", &t["auth0_access"]).await;
    assert_eq!(status, 201, "{body}");
    let (_, me) = call("GET", "/me", &t["auth0_access"]).await;
    let permissions: Vec<&str> = me["user"]["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    for p in ["images:read", "images:write"] {
        assert!(permissions.contains(&p), "{me}");
    }
    // Google ID tokens, both issuer forms; an unverified email is refused.
    assert_eq!(call("GET", "/me", &t["google_id"]).await.0, 200);
    assert_eq!(call("GET", "/me", &t["google_id_bare_iss"]).await.0, 200);
    assert_eq!(call("GET", "/me", &t["google_unverified"]).await.0, 401);
    // Okta: groups through the role table, scp as an array.
    assert_eq!(call("POST", "/images", &t["okta_access"]).await.0, 201);
    // Entra ID, a second listed tenant: app roles through the role table.
    let (status, me) = call("GET", "/me", &t["entra_other_tenant"]).await;
    assert_eq!(status, 200, "{me}");
    assert!(
        me["user"]["permissions"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("images:read"))
    );
    // Keycloak is not configured here: its tokens are refused.
    assert_eq!(call("GET", "/me", &t["keycloak_access"]).await.0, 401);
}

/// Entra ID for users and for services, one tenant and one audience; the
/// service slot takes the app-only tokens (`idtyp: "app"`).
const SLOTS_FILE: &str = r#"
[user]
mode = "optional"
claims_equal = { idtyp = "user" }
[[user.issuers]]
preset = "entra"
tenants = ["72f988bf-86f1-41af-91ab-2d7cd011db47"]
audiences = ["api://image-store"]
jwks_file = "{dir}/entra-jwks.json"

[service]
mode = "optional"
claims_equal = { idtyp = "app" }
[[service.issuers]]
preset = "entra"
tenants = ["72f988bf-86f1-41af-91ab-2d7cd011db47"]
audiences = ["api://image-store"]
jwks_file = "{dir}/entra-jwks.json"
"#;

#[tokio::test]
async fn entra_users_and_app_only_services_in_their_own_slots() {
    let dir = support::temp_dir("providers-slots");
    let t = tokens(&dir);
    let store = store(&dir, "slots.toml", SLOTS_FILE).await;
    let client = support::http_client();
    let (status, me) = store
        .call(
            &client,
            "GET",
            "/me",
            Some(&t["entra_v2"]),
            Some(&t["entra_app_only"]),
        )
        .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        me["user"]["sub"],
        "HKZpfaHyWadeOouYlitjrI-KffTm222X5rrV3xDqfKQ"
    );
    assert_eq!(me["service"]["sub"], "690222be-ff1a-4d56-abd1-7e4f7d38e474");
    // An app-only token in the user slot, a user token in the service slot.
    let (status, _) = store
        .call(&client, "GET", "/me", Some(&t["entra_app_only"]), None)
        .await;
    assert_eq!(status, 401);
    let (status, _) = store
        .call(&client, "GET", "/me", None, Some(&t["entra_v2"]))
        .await;
    assert_eq!(status, 401);
}

#[test]
fn every_entra_tenant_needs_the_client_id_as_audience() {
    let dir = support::temp_dir("providers-any");
    let jwks = dir.join("entra-jwks.json");
    std::fs::write(
        &jwks,
        tower_mandate::testing::TestIssuer::rs256("https://x").jwks(),
    )
    .unwrap();
    let file = |audience: &str| {
        let path = dir.join("any.toml");
        std::fs::write(
            &path,
            format!(
                "[[user.issuers]]\npreset = \"entra\"\ntenants = \"any\"\naudiences = [{audience:?}]\njwks_file = {:?}\n",
                jwks.to_str().unwrap()
            ),
        )
        .unwrap();
        path
    };
    // Anyone can make a tenant with an application whose ID URI is ours.
    let stderr = support::Example::refuses_to_start(
        "image_store",
        &[(
            "MANDATE_CONFIG",
            file("api://image-store").to_str().unwrap(),
        )],
    );
    assert!(stderr.contains("needs the client id (a GUID)"), "{stderr}");
    // The client id is unique across tenants.
    let ok = file("6e74172b-be56-4843-9ff4-e66a39bb12e3");
    let config = tower_mandate::config::MandateConfig::from_toml_file(&ok).unwrap();
    assert!(config.layer().is_ok());
}
