//! The checks every request passes before any handler runs.
//!
//! Order: (1) the `Host` header must name this server (localhost, a loopback address, the listen
//! address or a configured name) — this defeats DNS rebinding and applies to authenticated
//! requests too; (2) a request from off loopback (or any, when so configured) must carry the
//! Basic credentials, else 401; (3) a request whose `Origin` names another site, or that the
//! browser marks `Sec-Fetch-Site: cross-site`, may not change anything (403). The CSRF token
//! itself is checked by the RPC handler (409 handshake) and by the JSON API's mutating routes.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use data_encoding::BASE64;
use shoal::service::credentials::{constant_time_eq, random_secret};

use crate::{AppState, HttpConfig};

/// The header that carries the CSRF token on JSON API requests.
pub const TOKEN_HEADER: &str = "x-shoal-token";
/// Transmission's CSRF header.
pub const SESSION_ID_HEADER: &str = "x-transmission-session-id";

/// The security settings and this run's CSRF token.
#[derive(Debug)]
pub struct Security {
    config: HttpConfig,
    hosts: HashSet<String>,
    token: String,
}

impl Security {
    pub fn new(config: HttpConfig) -> Security {
        let mut hosts: HashSet<String> = ["localhost", "127.0.0.1", "::1"]
            .iter()
            .map(|h| (*h).to_owned())
            .collect();
        if !config.listen_addr.ip().is_unspecified() {
            hosts.insert(config.listen_addr.ip().to_string());
        }
        hosts.extend(config.allowed_hosts.iter().map(|h| h.to_ascii_lowercase()));
        Security {
            config,
            hosts,
            token: random_secret(32),
        }
    }

    /// This run's CSRF token (also the Transmission session id).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Whether the request's headers carry the token in `header_name`.
    pub fn has_token(&self, headers: &HeaderMap, header_name: &str) -> bool {
        headers
            .get(header_name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| constant_time_eq(v.as_bytes(), self.token.as_bytes()))
    }

    fn host_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        self.hosts.contains(&host_name(host).to_ascii_lowercase())
    }

    fn needs_credentials(&self, peer: Option<IpAddr>) -> bool {
        self.config.require_auth_on_loopback
            || !peer.is_some_and(|ip| ip.to_canonical().is_loopback())
    }

    fn credentials_ok(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.config.credentials else {
            return false;
        };
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let Some(encoded) = value
            .strip_prefix("Basic ")
            .or_else(|| value.strip_prefix("basic "))
        else {
            return false;
        };
        let Ok(decoded) = BASE64.decode(encoded.trim().as_bytes()) else {
            return false;
        };
        let Ok(text) = String::from_utf8(decoded) else {
            return false;
        };
        let Some((user, password)) = text.split_once(':') else {
            return false;
        };
        expected.matches(user, password)
    }

    fn cross_site(&self, headers: &HeaderMap) -> bool {
        if headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) == Some("cross-site") {
            return true;
        }
        match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
            None => false,
            Some(origin) => {
                let authority = origin
                    .split_once("://")
                    .map(|(_, rest)| rest)
                    .unwrap_or(origin);
                !self
                    .hosts
                    .contains(&host_name(authority).to_ascii_lowercase())
            }
        }
    }
}

/// The host part of a `Host` value or URL authority: without port, brackets or userinfo.
pub fn host_name(authority: &str) -> &str {
    let authority = authority
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(authority);
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split_once(']').map(|(h, _)| h).unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// The middleware: host, credentials, cross-site.
pub async fn check(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let security = &state.security;
    if !security.host_allowed(request.headers()) {
        return (
            StatusCode::MISDIRECTED_REQUEST,
            "Host header not allowed (DNS rebinding protection)\n",
        )
            .into_response();
    }
    let peer = Some(peer.ip());
    if security.needs_credentials(peer) && !security.credentials_ok(request.headers()) {
        return (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                "Basic realm=\"shoal\", charset=\"UTF-8\"",
            )],
            "credentials required\n",
        )
            .into_response();
    }
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !safe && security.cross_site(request.headers()) {
        return (StatusCode::FORBIDDEN, "cross-site request refused\n").into_response();
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        "x-content-type-options",
        header::HeaderValue::from_static("nosniff"),
    );
    headers.insert("x-frame-options", header::HeaderValue::from_static("DENY"));
    headers.insert(
        "referrer-policy",
        header::HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        assert_eq!(host_name("localhost:9091"), "localhost");
        assert_eq!(host_name("[::1]:9091"), "::1");
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
        assert_eq!(host_name("evil.example"), "evil.example");
        assert_eq!(host_name("u:p@evil.example:80"), "evil.example");
    }
}
