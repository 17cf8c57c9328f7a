//! The JSON API under `/api/v1`: the facade's calls one-to-one, its types as they are.
//!
//! Reads are GETs. Every other method needs the CSRF token in `X-Shoal-Token` (from
//! `GET /api/v1/token`, which a cross-site page cannot read) and JSON bodies
//! (`Content-Type: application/json`). Errors are `{"error": kind, "message": text}` with a
//! status that says what went wrong (404, 409 duplicate or metadata not arrived yet, 403 folder
//! refused, 501 not supported yet).

use std::convert::Infallible;
use std::path::PathBuf;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use futures_util::stream::Stream;
use serde::Deserialize;
use shoal::service::{
    AddRequest, FilesUpdate, ServiceError, SessionSettingsUpdate, TorrentRef, TorrentSettingsUpdate,
};

use crate::security::TOKEN_HEADER;
use crate::AppState;

/// How often the event stream sends the torrent list.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(1);

/// The `/api/v1` routes (each one listed in the OpenAPI document; a test checks both agree).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/token", get(token))
        .route("/session", get(session_get).put(session_set))
        .route("/stats", get(stats))
        .route("/events", get(events))
        .route("/torrents", get(list).post(add))
        .route("/torrents/{id}", get(detail).delete(remove))
        .route("/torrents/{id}/pause", post(pause))
        .route("/torrents/{id}/resume", post(resume))
        .route("/torrents/{id}/verify", post(verify))
        .route("/torrents/{id}/files", put(files))
        .route("/torrents/{id}/settings", put(settings))
        .route("/torrents/{id}/move", post(move_storage))
}

/// Refuses state-changing requests without the CSRF token in `X-Shoal-Token`.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let safe = matches!(*request.method(), Method::GET | Method::HEAD);
    if !safe && !state.security.has_token(request.headers(), TOKEN_HEADER) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf",
            "missing or wrong X-Shoal-Token",
        )
        .into_response();
    }
    next.run(request).await
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            message: message.into(),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> ApiError {
        let (status, kind) = match &error {
            ServiceError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            ServiceError::Duplicate { .. } => (StatusCode::CONFLICT, "duplicate"),
            ServiceError::MetadataPending { .. } => (StatusCode::CONFLICT, "metadata_pending"),
            ServiceError::InvalidTorrent(_) => (StatusCode::BAD_REQUEST, "invalid_torrent"),
            ServiceError::NotSupportedYet { .. } => {
                (StatusCode::NOT_IMPLEMENTED, "not_supported_yet")
            }
            ServiceError::PathRefused(_) => (StatusCode::FORBIDDEN, "path_refused"),
            ServiceError::Fetch { .. } => (StatusCode::BAD_GATEWAY, "fetch_failed"),
            ServiceError::InvalidRequest { .. } => (StatusCode::BAD_REQUEST, "invalid_request"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError::new(status, kind, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.kind, "message": self.message })),
        )
            .into_response()
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

fn parse_ref(id: &str) -> Result<TorrentRef, ApiError> {
    id.parse().map_err(ApiError::from)
}

async fn openapi() -> Json<serde_json::Value> {
    Json(crate::openapi::document())
}

async fn token(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "token": state.security.token() }))
}

async fn session_get(State(state): State<AppState>) -> Json<shoal::service::SessionInfo> {
    Json(state.service.session_info())
}

async fn session_set(
    State(state): State<AppState>,
    Json(update): Json<SessionSettingsUpdate>,
) -> ApiResult<shoal::service::SessionInfo> {
    Ok(Json(state.service.set_session(update).await?))
}

async fn stats(State(state): State<AppState>) -> Json<shoal::service::SessionStats> {
    Json(state.service.stats())
}

async fn list(State(state): State<AppState>) -> Json<Vec<shoal::service::TorrentView>> {
    Json(state.service.list())
}

async fn add(
    State(state): State<AppState>,
    Json(request): Json<AddRequest>,
) -> Result<Response, ApiError> {
    let view = state.service.add(request).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn detail(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<shoal::service::TorrentDetail> {
    Ok(Json(state.service.get(parse_ref(&id)?).await?))
}

#[derive(Debug, Deserialize)]
struct RemoveQuery {
    #[serde(default)]
    delete_data: bool,
}

async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<RemoveQuery>,
) -> Result<StatusCode, ApiError> {
    state
        .service
        .remove(parse_ref(&id)?, query.delete_data)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn pause(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.service.set_paused(parse_ref(&id)?, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn resume(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.service.set_paused(parse_ref(&id)?, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn verify(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.service.verify(parse_ref(&id)?).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn files(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(update): Json<FilesUpdate>,
) -> Result<StatusCode, ApiError> {
    state.service.set_files(parse_ref(&id)?, update).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn settings(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(update): Json<TorrentSettingsUpdate>,
) -> Result<StatusCode, ApiError> {
    state
        .service
        .set_torrent_settings(parse_ref(&id)?, update)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct MoveRequest {
    download_dir: PathBuf,
    #[serde(default = "yes")]
    move_data: bool,
}

fn yes() -> bool {
    true
}

async fn move_storage(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(request): Json<MoveRequest>,
) -> Result<StatusCode, ApiError> {
    state
        .service
        .move_storage(parse_ref(&id)?, &request.download_dir, request.move_data)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Server-sent events: `torrents` (the whole list, every second) and `event` (each
/// [`shoal::service::ServiceEvent`] as it happens). Ends at shutdown.
async fn events(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = state.service.subscribe();
    let mut tick = tokio::time::interval(SNAPSHOT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let stream = futures_util::stream::unfold(
        (state, rx, tick),
        |(state, mut rx, mut tick)| async move {
            let event = tokio::select! {
                _ = state.shutdown.cancelled() => return None,
                _ = tick.tick() => {
                    let list = serde_json::to_string(&state.service.list()).unwrap_or_default();
                    Event::default().event("torrents").data(list)
                }
                received = rx.recv() => match received {
                    Ok(event) => Event::default().event("event").data(serde_json::to_string(&event).unwrap_or_default()),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => Event::default().event("lagged").data(n.to_string()),
                    Err(_) => return None,
                },
            };
            Some((Ok(event), (state, rx, tick)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}
