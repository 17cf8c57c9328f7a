//! The daemon as a library: session + facade + HTTP server from one [`DaemonConfig`].
//!
//! `shoal daemon` calls [`Daemon::start`], waits for a signal, then [`Daemon::stop`]; tests do
//! the same in-process. Start: make the state folder, load or create the credentials (0600),
//! start the session (peer listener, DHT when configured), bring back the saved torrents,
//! bind the HTTP listener. Stop: end the HTTP server (event streams included), then stop
//! every torrent (resume files saved, trackers told `stopped`) and save the torrent list.

use std::net::SocketAddr;
use std::sync::Arc;

use shoal::service::config::DaemonConfig;
use shoal::service::credentials::Credentials;
use shoal::service::{Service, ServiceOptions};
use shoal::session::{Session, SessionConfig};
use tokio_util::sync::CancellationToken;

use crate::HttpConfig;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    #[error("cannot create {path}: {source}")]
    StateDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Credentials(#[from] shoal::service::credentials::CredentialsError),
    #[error(transparent)]
    Session(#[from] shoal::session::SessionError),
    #[error(transparent)]
    Service(#[from] shoal::service::ServiceError),
    #[error("cannot listen for HTTP on {addr}: {source}")]
    HttpListen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running daemon.
#[derive(Debug)]
pub struct Daemon {
    service: Arc<Service>,
    http_addr: SocketAddr,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Daemon {
    /// Starts everything; returns once the HTTP server accepts connections.
    pub async fn start(config: DaemonConfig) -> Result<Daemon, DaemonError> {
        std::fs::create_dir_all(&config.state_dir).map_err(|source| DaemonError::StateDir {
            path: config.state_dir.clone(),
            source,
        })?;
        let credentials = Credentials::load_or_create(&config.state_dir)?;
        let mut session_config = SessionConfig {
            state_dir: Some(config.state_dir.clone()),
            ..SessionConfig::default()
        };
        session_config.listen_addr = config.peer_addr;
        session_config.rate_limits = config.rate_limits();
        if config.dht {
            let mut dht = shoal::dht::DhtConfig::default();
            if let SocketAddr::V4(v4) = config.peer_addr {
                dht.bind = v4;
            }
            session_config.dht = Some(dht);
        }
        let session = Session::start(session_config).await?;
        let options = ServiceOptions {
            state_dir: config.state_dir.clone(),
            download_dir: config.download_dir.clone(),
            download_roots: config.roots(),
        };
        let service = Service::open(session, options).await?;
        let listener = tokio::net::TcpListener::bind(config.http_addr)
            .await
            .map_err(|source| DaemonError::HttpListen {
                addr: config.http_addr,
                source,
            })?;
        let http_addr = listener.local_addr().unwrap_or(config.http_addr);
        let http = HttpConfig {
            listen_addr: http_addr,
            allowed_hosts: config.allowed_hosts.clone(),
            credentials: Some(credentials),
            require_auth_on_loopback: config.require_auth_on_loopback,
            max_body_bytes: config.max_body_bytes,
        };
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(crate::serve(
            listener,
            Arc::clone(&service),
            http,
            shutdown.clone(),
        ));
        tracing::info!(%http_addr, "HTTP server listening");
        Ok(Daemon {
            service,
            http_addr,
            shutdown,
            server,
        })
    }

    /// Where the HTTP server listens (with the real port when port 0 was asked for).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The facade.
    pub fn service(&self) -> &Arc<Service> {
        &self.service
    }

    /// Stops the HTTP server, then the torrents (saving their state), then the session.
    pub async fn stop(self) {
        self.shutdown.cancel();
        match tokio::time::timeout(std::time::Duration::from_secs(10), self.server).await {
            Ok(Ok(Err(error))) => tracing::warn!(%error, "HTTP server error"),
            Err(_) => tracing::warn!("HTTP server did not stop within 10 s"),
            _ => {}
        }
        self.service.shutdown().await;
    }
}
