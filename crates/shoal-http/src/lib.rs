//! shoal-http: the HTTP front end over the `shoal::service` facade.
//!
//! One axum router serves, on one address:
//! - `/api/v1/...`: the JSON API ([`json_api`]), described by `/api/v1/openapi.json` ([`openapi`]),
//!   with server-sent events at `/api/v1/events`;
//! - `POST /transmission/rpc`: Transmission's RPC ([`rpc`]) for transmission-remote, Sonarr and co.;
//! - `/metrics`: Prometheus text ([`metrics`]);
//! - `/` and `/web/*`: the web UI, embedded in the binary ([`web`]).
//!
//! Every request first passes [`security`]: the `Host` check (DNS rebinding), credentials for
//! requests from off loopback, and a cross-origin check; then the body size limit. State-changing
//! requests also need the CSRF token: the `X-Transmission-Session-Id` handshake for the RPC, the
//! `X-Shoal-Token` header for the JSON API (the same per-run random value).

pub mod daemon;
pub mod json_api;
pub mod metrics;
pub mod openapi;
pub mod rpc;
pub mod security;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use shoal::service::credentials::Credentials;
use shoal::service::Service;
use tokio_util::sync::CancellationToken;

/// How the HTTP front end is set up.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// The address the server is bound to (its IP is accepted as a `Host`).
    pub listen_addr: SocketAddr,
    /// Extra host names accepted in the `Host` header.
    pub allowed_hosts: Vec<String>,
    /// Credentials requests from off loopback must carry. `None`: such requests are refused.
    pub credentials: Option<Credentials>,
    /// Ask for the credentials on loopback too.
    pub require_auth_on_loopback: bool,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
}

/// What every handler gets.
#[derive(Clone, Debug)]
pub struct AppState {
    pub service: Arc<Service>,
    pub security: Arc<security::Security>,
    /// Cancelled at shutdown: ends the event streams so the server can stop.
    pub shutdown: CancellationToken,
}

/// The whole router, with the security layers. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()` (the auth check needs the peer address).
pub fn router(service: Arc<Service>, config: HttpConfig, shutdown: CancellationToken) -> Router {
    let max_body = config.max_body_bytes;
    let state = AppState {
        service,
        security: Arc::new(security::Security::new(config)),
        shutdown,
    };
    Router::new()
        .nest(
            "/api/v1",
            json_api::routes().layer(axum::middleware::from_fn_with_state(
                state.clone(),
                json_api::require_token,
            )),
        )
        .route(
            "/transmission/rpc",
            axum::routing::post(rpc::handle).get(rpc::handle_get),
        )
        .route(
            "/transmission/rpc/",
            axum::routing::post(rpc::handle).get(rpc::handle_get),
        )
        .route("/metrics", axum::routing::get(metrics::handle))
        .merge(web::routes())
        .fallback(web::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security::check,
        ))
        .with_state(state)
}

/// Serves until `shutdown` is cancelled, then finishes the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: Arc<Service>,
    config: HttpConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = router(service, config, shutdown.clone());
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
}
