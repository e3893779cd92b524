//! grpc_store: image_store's rules as the tonic service
//! `mandate.demo.v1.Images` (`proto/mandate/demo/v1/images.proto`).
//!
//! ```text
//! cargo run --example grpc_store --all-features
//! ```
//!
//! `Get` needs `images:read`, `Delete` needs `images:delete`, each plus
//! ownership or the `…:any` permission; an unknown id after authorization
//! is NOT_FOUND. Environment as image_store (`USER_*`, `SERVICE_*`,
//! `ALGORITHMS`, `LEEWAY_SECS`); listens on `GRPC_BIND` (default
//! `127.0.0.1:50051`). The store starts with `img-1` (owned by alice) and
//! `img-2` (owned by bob). Without `USER_ISSUER`, embedded issuers print
//! ready tokens, as image_store does.

#[path = "../image_store/app.rs"]
mod app;
mod service;

use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let settings = app::Settings::from_env()?;
    let (layer, embedded) = app::layer_from_env(&settings)?;
    let bind = app::env("GRPC_BIND").unwrap_or_else(|| "127.0.0.1:50051".into());
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    let addr = listener.local_addr()?;
    if let Some(e) = &embedded {
        let day = Duration::from_secs(24 * 3600);
        let scope = "images:read images:delete";
        println!(
            "ALICE={}",
            e.users.token("alice").scope(scope).expires_in(day).sign()
        );
        println!(
            "BOB={}",
            e.users.token("bob").scope(scope).expires_in(day).sign()
        );
        println!(
            "SERVICE={}",
            e.services
                .token("archiver")
                .scope("images:read images:read:any")
                .expires_in(day)
                .sign()
        );
    }
    let users_issuer = match (&embedded, app::env("USER_ISSUER")) {
        (Some(e), _) => e.users.issuer().to_owned(),
        (None, Some(issuer)) => issuer,
        (None, None) => String::new(),
    };
    println!("grpc_store listening on http://{addr}");
    tonic::transport::Server::builder()
        .layer(layer)
        .add_service(service::pb::images_server::ImagesServer::new(
            service::Store::seeded(&users_issuer),
        ))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
        .await?;
    Ok(())
}
