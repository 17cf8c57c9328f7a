//! The HTTP(S) tracker client: one `reqwest` client (rustls, no proxy, no decompression, no idle
//! connections kept), a redirect limit, timeouts, and reply bodies read chunk by chunk up to a cap.

use reqwest::redirect;
use shoal_proto::tracker::http as codec;
use shoal_proto::tracker::{Announce, AnnounceReply, ScrapeStats};
use shoal_proto::InfoHash;

use super::{TrackerConfig, TrackerError};

/// Marker error the redirect policy returns, so the failure can be told apart.
#[derive(Debug, thiserror::Error)]
#[error("more than {limit} redirects")]
struct RedirectLimit {
    limit: usize,
}

#[derive(Debug)]
pub(crate) struct HttpTracker {
    client: reqwest::Client,
    max_body: usize,
    max_redirects: usize,
    timeout: std::time::Duration,
}

impl HttpTracker {
    pub(crate) fn new(config: &TrackerConfig) -> Result<Self, TrackerError> {
        let limit = config.max_redirects;
        let policy = redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > limit {
                attempt.error(RedirectLimit { limit })
            } else if !matches!(attempt.url().scheme(), "http" | "https") {
                attempt.stop()
            } else {
                attempt.follow()
            }
        });
        let client = reqwest::Client::builder()
            .redirect(policy)
            .timeout(config.http_timeout)
            .connect_timeout(config.http_connect_timeout)
            .user_agent(config.user_agent.clone())
            .no_proxy()
            // Announces are minutes apart and trackers such as opentracker close the connection
            // after each reply: a pooled connection would mostly be a dead one.
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| TrackerError::Http {
                detail: e.to_string(),
            })?;
        Ok(HttpTracker {
            client,
            max_body: config.max_body_bytes,
            max_redirects: limit,
            timeout: config.http_timeout,
        })
    }

    pub(crate) async fn announce(
        &self,
        url: &str,
        announce: &Announce,
    ) -> Result<AnnounceReply, TrackerError> {
        let body = self.get(&codec::announce_url(url, announce)).await?;
        Ok(codec::decode_announce(&body)?)
    }

    pub(crate) async fn scrape(
        &self,
        url: &str,
        hashes: &[InfoHash],
    ) -> Result<Vec<(InfoHash, ScrapeStats)>, TrackerError> {
        let scrape = codec::scrape_url(url).ok_or_else(|| TrackerError::ScrapeUnsupported {
            url: url.to_owned(),
        })?;
        let body = self.get(&codec::scrape_query_url(&scrape, hashes)).await?;
        Ok(codec::decode_scrape(&body)?)
    }

    /// GETs `url` and returns the body, at most `max_body` bytes. A non-2xx status is an error,
    /// unless the body is a bencoded `failure reason` (some trackers send one with a 4xx).
    async fn get(&self, url: &str) -> Result<Vec<u8>, TrackerError> {
        let mut response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| self.map_error(e))?;
        let status = response.status();
        if let Some(len) = response.content_length() {
            if len > self.max_body as u64 {
                return Err(TrackerError::BodyTooLarge {
                    limit: self.max_body,
                });
            }
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.map_error(e))? {
            if body.len() + chunk.len() > self.max_body {
                return Err(TrackerError::BodyTooLarge {
                    limit: self.max_body,
                });
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(match codec::decode_announce(&body) {
                Err(codec::HttpReplyError::Failure { reason }) => TrackerError::Refused { reason },
                _ => TrackerError::HttpStatus {
                    status: status.as_u16(),
                },
            });
        }
        Ok(body)
    }

    fn map_error(&self, e: reqwest::Error) -> TrackerError {
        if e.is_redirect() {
            TrackerError::TooManyRedirects {
                limit: self.max_redirects,
            }
        } else if e.is_timeout() {
            TrackerError::Timeout {
                after: self.timeout,
            }
        } else {
            // The chain of sources says what failed (refused, reset, TLS ...).
            let mut detail = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                detail.push_str(": ");
                detail.push_str(&s.to_string());
                source = s.source();
            }
            TrackerError::Http { detail }
        }
    }
}
