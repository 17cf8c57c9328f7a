//! The web UI: plain HTML, JS and CSS from the repository's `web/` folder, embedded in the
//! binary at build time. Only the files in [`ASSETS`] are served, matched by exact name: there
//! is no file system access, so `..` (plain or encoded) can only ever give 404.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::AppState;

/// (name, content type, bytes) of every embedded file.
pub const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../../../web/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../web/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../web/style.css"),
    ),
];

/// `/` and `/web/{file}`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { asset("index.html") }))
        .route("/web/", get(|| async { asset("index.html") }))
        .route(
            "/web/{*file}",
            get(|Path(file): Path<String>| async move { asset(&file) }),
        )
}

fn asset(name: &str) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "no-cache"),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
                ),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

/// 404 for everything else.
pub async fn not_found() -> impl IntoResponse {
    (StatusCode::NOT_FOUND, "not found\n")
}

#[cfg(test)]
mod tests {
    use super::ASSETS;

    fn index() -> &'static str {
        std::str::from_utf8(ASSETS[0].2).expect("index.html is UTF-8")
    }

    /// Every `/web/...` file the page loads is embedded.
    #[test]
    fn the_page_only_loads_embedded_files() {
        let page = index();
        let mut found = 0;
        for piece in page.split("\"/web/").skip(1) {
            let name = piece.split('"').next().unwrap_or_default();
            assert!(
                ASSETS.iter().any(|(n, _, _)| *n == name),
                "index.html loads /web/{name}, which is not embedded"
            );
            found += 1;
        }
        assert!(found >= 2, "index.html should load app.js and style.css");
        for outside in ["src=\"http", "href=\"http", "src=\"//", "href=\"//"] {
            assert!(
                !page.contains(outside),
                "index.html loads from outside: {outside}"
            );
        }
    }

    /// The CSP (`script-src 'self'; style-src 'self'`) blocks inline scripts, inline event
    /// handlers and style attributes, so the page and the script must not use them.
    #[test]
    fn nothing_inline_that_the_csp_would_block() {
        let page = index().to_ascii_lowercase();
        assert!(!page.contains("<script>"), "inline <script> in index.html");
        assert!(!page.contains("<style"), "inline <style> in index.html");
        assert!(!page.contains(" style="), "style attribute in index.html");
        assert!(!page.contains(" onclick=") && !page.contains(" onload="));
        let script = std::str::from_utf8(ASSETS[1].2).expect("app.js is UTF-8");
        assert!(!script.contains("setAttribute(\"style\""));
        assert!(
            !script.contains("innerHTML"),
            "app.js builds the DOM with textContent only"
        );
        assert!(!script.contains("eval("));
    }
}
