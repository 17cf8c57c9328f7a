//! Secure by default: wrong `Host` rejected, cross-site POST without the token rejected, no
//! credentials off loopback gives 401, `..` in static URLs gives 404, a save path outside the
//! download roots is refused; and the OpenAPI document matches the routes.

use crate::common;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

struct App {
    router: axum::Router,
    _daemon: shoal_http::daemon::Daemon,
    root: tempfile::TempDir,
}

async fn app(peer: [u8; 4]) -> App {
    let root = tempfile::tempdir().unwrap();
    let daemon = common::daemon(root.path()).await;
    let creds =
        shoal::service::credentials::Credentials::load_or_create(&root.path().join("state"))
            .unwrap();
    let config = shoal_http::HttpConfig {
        listen_addr: daemon.http_addr(),
        allowed_hosts: vec![],
        credentials: Some(creds),
        require_auth_on_loopback: false,
        max_body_bytes: 1 << 20,
    };
    let router = shoal_http::router(daemon.service().clone(), config, Default::default())
        .layer(MockConnectInfo(SocketAddr::from((peer, 40000))));
    App {
        router,
        _daemon: daemon,
        root,
    }
}

async fn send(app: &App, request: Request<Body>) -> (StatusCode, String) {
    let response = app.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn get(path: &str) -> axum::http::request::Builder {
    Request::get(path).header("host", "127.0.0.1:9091")
}

async fn token(app: &App) -> String {
    let (_, body) = send(app, get("/api/v1/token").body(Body::empty()).unwrap()).await;
    serde_json::from_str::<serde_json::Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_wrong_host_is_rejected_even_with_credentials() {
    let app = app([127, 0, 0, 1]).await;
    let (status, _) = send(
        &app,
        Request::get("/api/v1/torrents")
            .header("host", "evil.example:9091")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);
    let creds =
        shoal::service::credentials::Credentials::load_or_create(&app.root.path().join("state"))
            .unwrap();
    let basic =
        data_encoding::BASE64.encode(format!("{}:{}", creds.username, creds.password).as_bytes());
    let request = Request::get("/api/v1/torrents")
        .header("host", "rebind.example")
        .header("authorization", format!("Basic {basic}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, request).await.0, StatusCode::MISDIRECTED_REQUEST);
    assert_eq!(
        send(&app, get("/api/v1/torrents").body(Body::empty()).unwrap())
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn cross_site_posts_without_the_token_are_rejected() {
    let app = app([127, 0, 0, 1]).await;
    let body =
        r#"{"source":{"magnet":"magnet:?xt=urn:btih:0000000000000000000000000000000000000000"}}"#;
    let no_token = get("/api/v1/torrents")
        .method("POST")
        .header("content-type", "application/json");
    assert_eq!(
        send(&app, no_token.body(Body::from(body)).unwrap()).await.0,
        StatusCode::FORBIDDEN
    );
    let cross = get("/api/v1/torrents")
        .method("POST")
        .header("origin", "https://evil.example")
        .header("x-shoal-token", token(&app).await)
        .header("content-type", "application/json");
    assert_eq!(
        send(&app, cross.body(Body::from(body)).unwrap()).await.0,
        StatusCode::FORBIDDEN
    );
    let rpc = get("/transmission/rpc")
        .method("POST")
        .body(Body::from(r#"{"method":"session-get"}"#))
        .unwrap();
    let (status, _) = send(&app, rpc).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "RPC without the session id gets the 409 handshake"
    );
}

#[tokio::test]
async fn no_credentials_off_loopback_gives_401() {
    let app = app([192, 0, 2, 7]).await;
    let (status, _) = send(&app, get("/api/v1/torrents").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let wrong = data_encoding::BASE64.encode(b"shoal:guess");
    let request = get("/")
        .header("authorization", format!("Basic {wrong}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, request).await.0, StatusCode::UNAUTHORIZED);
    let creds =
        shoal::service::credentials::Credentials::load_or_create(&app.root.path().join("state"))
            .unwrap();
    let right =
        data_encoding::BASE64.encode(format!("{}:{}", creds.username, creds.password).as_bytes());
    let request = get("/")
        .header("authorization", format!("Basic {right}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, request).await.0, StatusCode::OK);
}

#[tokio::test]
async fn traversal_in_static_urls_gives_404() {
    let app = app([127, 0, 0, 1]).await;
    let (status, body) = send(&app, get("/web/app.js").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("X-Shoal-Token"));
    for path in [
        "/web/../Cargo.toml",
        "/web/%2e%2e/Cargo.toml",
        "/web/..%2fCargo.toml",
        "/web/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/../../etc/passwd",
    ] {
        let (status, body) = send(&app, get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            !body.contains("[workspace]") && !body.contains("root:"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_save_path_outside_the_roots_is_refused() {
    let app = app([127, 0, 0, 1]).await;
    let fx = common::fixture(app.root.path(), "pack", &[1000], 16384);
    let token = token(&app).await;
    for dir in ["/etc", "/tmp/../etc"] {
        let body = serde_json::json!({
            "source": { "metainfo": data_encoding::BASE64.encode(&fx.metainfo) },
            "download_dir": dir,
        });
        let request = get("/api/v1/torrents")
            .method("POST")
            .header("x-shoal-token", &token)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let (status, body) = send(&app, request).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{dir}: {body}");
        assert!(body.contains("path_refused"), "{body}");
    }
    assert!(app._daemon.service().list().is_empty());
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let app = app([127, 0, 0, 1]).await;
    let token = token(&app).await;
    let big = format!(r#"{{"source":{{"metainfo":"{}"}}}}"#, "A".repeat(2 << 20));
    let request = get("/api/v1/torrents")
        .method("POST")
        .header("x-shoal-token", token)
        .header("content-type", "application/json")
        .body(Body::from(big))
        .unwrap();
    assert_eq!(send(&app, request).await.0, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn the_openapi_document_matches_the_routes() {
    let app = app([127, 0, 0, 1]).await;
    let (_, body) = send(
        &app,
        get("/api/v1/openapi.json").body(Body::empty()).unwrap(),
    )
    .await;
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_some() {
                documented.push((method.to_owned(), path.clone()));
            }
        }
    }
    let mut routes: Vec<(String, String)> = shoal_http::openapi::ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    documented.sort();
    routes.sort();
    assert_eq!(documented, routes);
    let token = token(&app).await;
    for (method, path) in &routes {
        if path == "/events" {
            continue; // a stream that does not end
        }
        let uri = format!("/api/v1{}", path.replace("{id}", "999"));
        let request = get(&uri)
            .method(method.to_uppercase().as_str())
            .header("x-shoal-token", &token)
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap();
        let (status, body) = send(&app, request).await;
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        if status == StatusCode::NOT_FOUND {
            assert!(
                body.contains("not_found"),
                "{method} {uri} reached no handler: {body}"
            );
        }
    }
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let app = app([127, 0, 0, 1]).await;
    let (status, body) = send(&app, get("/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    for name in [
        "shoal_downloaded_bytes_total 0",
        "shoal_torrents{state=\"seeding\"} 0",
        "shoal_hash_failures_total",
        "shoal_disk_queue_depth",
        "shoal_peers 0",
    ] {
        assert!(body.contains(name), "{name} in {body}");
    }
}
