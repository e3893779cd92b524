//! The crate's configuration as the `[mandate]` section of an application's
//! own TOML file, loaded with figment and with the `config` crate, one value
//! overridden from the environment (`APP_MANDATE__USER__MODE=optional`).
//!
//! ```text
//! APP_MANDATE__USER__MODE=optional cargo run --example config_file
//! ```

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use figment::providers::Format as _;
use http::Request;
use serde::Deserialize;
use tower::ServiceExt as _;
use tower_mandate::Caller;
use tower_mandate::config::{MandateConfig, SlotMode};
use tower_mandate::testing::TestIssuer;

/// The application's own configuration, with the crate's as one section.
#[derive(Debug, Deserialize)]
struct AppConfig {
    bind: String,
    mandate: MandateConfig,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("mandate-config-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let idp = TestIssuer::rs256("https://idp.example").with_audience("image-store");
    let jwks = dir.join("users-jwks.json");
    std::fs::write(&jwks, idp.jwks())?;
    let file = dir.join("app.toml");
    std::fs::write(
        &file,
        format!(
            r#"
bind = "127.0.0.1:3000"

[mandate.user]
mode = "required"
[[mandate.user.issuers]]
issuer = "https://idp.example"
audiences = ["image-store"]
algorithms = ["RS256"]
jwks_file = {jwks:?}
leeway = "30s"
permission_claims = ["scope"]
"#,
            jwks = jwks.to_str().unwrap_or_default()
        ),
    )?;
    // The deployment's override, if any (the test command sets it).
    let overridden = std::env::var("APP_MANDATE__USER__MODE").ok();
    let expected_mode = match overridden.as_deref() {
        None => SlotMode::Required,
        Some("optional") => SlotMode::Optional,
        Some(other) => {
            return Err(format!("this example overrides with optional, not {other:?}").into());
        }
    };

    // figment: the file, then the environment on top.
    let figment = figment::Figment::new()
        .merge(figment::providers::Toml::file(&file))
        .merge(figment::providers::Env::prefixed("APP_").split("__"));
    let from_figment: AppConfig = figment.extract()?;
    report("figment", &from_figment, expected_mode)?;

    // The config crate: the same.
    let settings = config::Config::builder()
        .add_source(config::File::from(file.as_path()))
        .add_source(
            config::Environment::with_prefix("APP")
                .prefix_separator("_")
                .separator("__"),
        )
        .build()?;
    let from_config: AppConfig = settings.try_deserialize()?;
    report("config", &from_config, expected_mode)?;

    // Either gives the same layer as the builders would.
    let app = Router::new()
        .route(
            "/me",
            get(|caller: Option<Caller>| async move {
                caller.map_or("anonymous".to_owned(), |c| {
                    c.user().map(|u| u.subject().to_owned()).unwrap_or_default()
                })
            }),
        )
        .route_layer(from_config.mandate.layer()?);
    let token = idp.token("alice").scope("images:read").sign();
    let nobody = if expected_mode == SlotMode::Optional {
        // Optional (the override): no token is an anonymous caller.
        (200, "anonymous")
    } else {
        // Required (the file): refused.
        (401, "")
    };
    for (name, auth, (status, body)) in [
        ("alice", Some(token.as_str()), (200, "alice")),
        ("nobody", None, nobody),
    ] {
        let mut req = Request::get("/me");
        if let Some(token) = auth {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let res = app.clone().oneshot(req.body(Body::empty())?).await?;
        let got = res.status().as_u16();
        let text = axum::body::to_bytes(res.into_body(), 1024).await?;
        let text = String::from_utf8_lossy(&text);
        println!("GET /me as {name}: {got} {text}");
        assert_eq!(got, status);
        if status == 200 {
            assert_eq!(text, body);
        }
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn report(
    loader: &str,
    app: &AppConfig,
    expected: SlotMode,
) -> Result<(), Box<dyn std::error::Error>> {
    let user = app.mandate.user.as_ref().ok_or("no [mandate.user]")?;
    println!(
        "{loader}: bind {}, user slot {:?}, {} issuer(s)",
        app.bind,
        user.mode,
        user.issuers.len()
    );
    if user.mode != expected {
        return Err(format!(
            "{loader}: mandate.user.mode is {:?}, not {expected:?}",
            user.mode
        )
        .into());
    }
    Ok(())
}
