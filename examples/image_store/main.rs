//! image_store: an image service whose routes are gated by tower-mandate.
//!
//! ```text
//! cargo run --release --example image_store
//! ```
//!
//! Environment: `BIND`, `USER_ISSUER`, `USER_AUDIENCE`, `USER_JWKS_FILE`,
//! `SERVICE_ISSUER`, `SERVICE_AUDIENCE`, `SERVICE_JWKS_FILE`, `ALGORITHMS`,
//! `LEEWAY_SECS` (see README.md), or `MANDATE_CONFIG`, a TOML file of
//! `tower_mandate::config::MandateConfig`, which then replaces the slot
//! variables; its `[policy]` table (`authzen_url`, `timeout`) makes the
//! image routes ask an AuthZEN decision point (actions `read`, `create`,
//! `delete` on resources of type `image`) instead of the built-in
//! ownership rules. Without either it runs with embedded issuers and
//! prints ready tokens.

mod app;

use std::time::Duration;

use app::{Embedded, Settings};

fn print_tokens(bind: &str, e: &Embedded) {
    let day = Duration::from_secs(24 * 3600);
    let user = |sub: &str| {
        e.users
            .token(sub)
            .scope("images:read images:write images:delete")
            .expires_in(day)
            .sign()
    };
    let alice = user("alice");
    let bob = user("bob");
    let service = e
        .services
        .token("archiver")
        .scope("images:read images:read:any")
        .expires_in(day)
        .sign();
    println!("embedded issuers; tokens valid for 24 h:");
    println!("ALICE={alice}");
    println!("BOB={bob}");
    println!("SERVICE={service}");
    println!();
    println!("try:");
    println!(
        "  curl -s -H \"Authorization: Bearer $ALICE\" --data-binary @README.md http://{bind}/images"
    );
    println!("  curl -s -H \"Authorization: Bearer $ALICE\" http://{bind}/images/img-1");
    println!("  curl -si -H \"Authorization: Bearer $BOB\" http://{bind}/images/img-1");
    println!("  curl -s -H \"Service-Authorization: Bearer $SERVICE\" http://{bind}/images/img-1");
    println!(
        "  curl -s -H \"Authorization: Bearer $ALICE\" -H \"Service-Authorization: Bearer $SERVICE\" http://{bind}/me"
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    // Metrics in Prometheus text at /metrics.
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
    let settings = Settings::from_env()?;
    let listener = tokio::net::TcpListener::bind(&settings.bind).await?;
    let bound = listener.local_addr()?;
    let (layer, embedded, policy) = app::layer_from_config_or_env(&settings, bound)?;
    let bind = bound.to_string();
    if let Some(e) = &embedded {
        print_tokens(&bind, e);
    }
    println!("image_store listening on http://{bind}");
    axum::serve(
        listener,
        app::router_with_policy(layer, Some(metrics), policy),
    )
    .await?;
    Ok(())
}
