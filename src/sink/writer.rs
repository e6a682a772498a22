//! TSDB writers: InfluxDB 1.x `/write` (reqwest), InfluxDB v2 API (the
//! `influxdb2` crate), a local file (demo) and none. Each classifies the
//! answer into one [`WriteOutcome`]; the retry/split policy lives in one
//! place, `task.rs`.
//!
//! The `influxdb2` crate's `write_line_protocol` neither gzips nor exposes
//! response headers. We gzip by giving it a reqwest client whose default
//! headers carry `Content-Encoding: gzip` and passing a compressed body;
//! `Retry-After` is honoured on the v1 path only, the v2 path falls back to
//! our exponential backoff (upstream: aprimadi/influxdb2 has no header access
//! in `RequestError::Http`).

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{TsdbSettings, TsdbTarget};

/// What the TSDB said about one request.
#[derive(Clone, Debug, PartialEq)]
pub enum WriteOutcome {
    /// 2xx: every line stored.
    Ok,
    /// Transient (network, 429, 5xx, auth or missing database): try again
    /// later, after `after` if the server said so.
    Retry {
        /// Server's Retry-After, if any.
        after: Option<Duration>,
        /// For the log.
        reason: String,
    },
    /// 413: the body is too large; split it.
    TooLarge,
    /// 400/422: some line is refused; split to find it.
    Rejected {
        /// Server's message.
        reason: String,
    },
}

/// Classifies an HTTP status (2xx handled by the caller).
pub fn classify(status: u16, text: &str, retry_after: Option<Duration>) -> WriteOutcome {
    match status {
        200..=299 => WriteOutcome::Ok,
        413 => WriteOutcome::TooLarge,
        400 | 422 => WriteOutcome::Rejected {
            reason: text.chars().take(500).collect(),
        },
        _ => WriteOutcome::Retry {
            after: retry_after,
            reason: format!(
                "HTTP {status}: {}",
                text.chars().take(300).collect::<String>()
            ),
        },
    }
}

/// Parses `Retry-After` seconds (the HTTP-date form is treated as absent).
pub fn parse_retry_after(v: Option<&str>) -> Option<Duration> {
    v.and_then(|s| s.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(300)))
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    // Writing to a Vec cannot fail.
    let _ = e.write_all(body);
    e.finish().unwrap_or_default()
}

/// A configured writer.
pub enum Writer {
    /// InfluxDB 1.x.
    V1 {
        /// HTTP client.
        http: reqwest::Client,
        /// Full write URL with query.
        write_url: url::Url,
        /// Basic auth.
        credentials: Option<(String, crate::config::Secret)>,
        /// Gzip bodies.
        gzip: bool,
    },
    /// InfluxDB v2 via `influxdb2`.
    V2 {
        /// Client.
        client: influxdb2::Client,
        /// Org.
        org: String,
        /// Bucket.
        bucket: String,
        /// Gzip bodies.
        gzip: bool,
    },
    /// Local file.
    File {
        /// Path.
        path: PathBuf,
    },
    /// Discard (records stay in the log only).
    None,
}

/// Writer construction failures.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the TSDB writer: {0}")]
pub struct WriterError(String);

impl Writer {
    /// Builds the writer for the settings.
    pub fn new(s: &TsdbSettings) -> Result<Writer, WriterError> {
        Ok(match &s.target {
            TsdbTarget::InfluxV1 {
                url,
                database,
                retention_policy,
                credentials,
            } => {
                let mut write_url = url.join("write").map_err(|e| WriterError(e.to_string()))?;
                {
                    let mut q = write_url.query_pairs_mut();
                    q.append_pair("db", database).append_pair("precision", "ms");
                    if !retention_policy.is_empty() {
                        q.append_pair("rp", retention_policy);
                    }
                }
                let http = reqwest::Client::builder()
                    .timeout(s.request_timeout)
                    .build()
                    .map_err(|e| WriterError(e.to_string()))?;
                Writer::V1 {
                    http,
                    write_url,
                    credentials: credentials.clone(),
                    gzip: s.gzip,
                }
            }
            TsdbTarget::InfluxV2 {
                url,
                org,
                bucket,
                token,
            } => {
                let mut headers = reqwest011::header::HeaderMap::new();
                if s.gzip {
                    headers.insert(
                        "Content-Encoding",
                        reqwest011::header::HeaderValue::from_static("gzip"),
                    );
                }
                let builder = reqwest011::ClientBuilder::new()
                    .timeout(s.request_timeout)
                    .default_headers(headers);
                // URL validated in config, so the crate's parse cannot panic.
                let client = influxdb2::ClientBuilder::with_builder(
                    builder,
                    url.as_str(),
                    org.clone(),
                    token.expose(),
                )
                .build()
                .map_err(|e| WriterError(e.to_string()))?;
                Writer::V2 {
                    client,
                    org: org.clone(),
                    bucket: bucket.clone(),
                    gzip: s.gzip,
                }
            }
            TsdbTarget::File { path } => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| WriterError(format!("{}: {e}", dir.display())))?;
                }
                Writer::File { path: path.clone() }
            }
            TsdbTarget::None => Writer::None,
        })
    }

    /// Short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Writer::V1 { .. } => "influxdb_v1",
            Writer::V2 { .. } => "influxdb_v2",
            Writer::File { .. } => "file",
            Writer::None => "none",
        }
    }

    /// Writes one body of newline-terminated lines (ms precision).
    pub async fn write(&self, body: &str) -> WriteOutcome {
        match self {
            Writer::V1 {
                http,
                write_url,
                credentials,
                gzip: gz,
            } => {
                let mut req = http.post(write_url.clone());
                if let Some((u, p)) = credentials {
                    req = req.basic_auth(u, Some(p.expose()));
                }
                req = if *gz {
                    req.header("Content-Encoding", "gzip")
                        .body(gzip(body.as_bytes()))
                } else {
                    req.body(body.to_owned())
                };
                match req.send().await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        if (200..300).contains(&status) {
                            return WriteOutcome::Ok;
                        }
                        let ra = parse_retry_after(
                            resp.headers()
                                .get("retry-after")
                                .and_then(|v| v.to_str().ok()),
                        );
                        let text = resp.text().await.unwrap_or_default();
                        classify(status, &text, ra)
                    }
                    Err(e) => WriteOutcome::Retry {
                        after: None,
                        reason: e.to_string(),
                    },
                }
            }
            Writer::V2 {
                client,
                org,
                bucket,
                gzip: gz,
            } => {
                let payload: Vec<u8> = if *gz {
                    gzip(body.as_bytes())
                } else {
                    body.as_bytes().to_vec()
                };
                match client
                    .write_line_protocol_with_precision(
                        org,
                        bucket,
                        payload,
                        influxdb2::api::write::TimestampPrecision::Milliseconds,
                    )
                    .await
                {
                    Ok(()) => WriteOutcome::Ok,
                    Err(influxdb2::RequestError::Http { status, text }) => {
                        classify(status.as_u16(), &text, None)
                    }
                    Err(e) => WriteOutcome::Retry {
                        after: None,
                        reason: e.to_string(),
                    },
                }
            }
            Writer::File { path } => {
                let path = path.clone();
                let body = body.to_owned();
                let r = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                    let mut f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)?;
                    f.write_all(body.as_bytes())?;
                    f.sync_data()
                })
                .await;
                match r {
                    Ok(Ok(())) => WriteOutcome::Ok,
                    Ok(Err(e)) => WriteOutcome::Retry {
                        after: None,
                        reason: format!("file write failed: {e}"),
                    },
                    Err(e) => WriteOutcome::Retry {
                        after: None,
                        reason: e.to_string(),
                    },
                }
            }
            Writer::None => WriteOutcome::Ok,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_documented_policy() {
        assert_eq!(classify(204, "", None), WriteOutcome::Ok);
        assert_eq!(classify(413, "", None), WriteOutcome::TooLarge);
        assert!(matches!(
            classify(400, "bad line", None),
            WriteOutcome::Rejected { .. }
        ));
        assert!(matches!(
            classify(422, "", None),
            WriteOutcome::Rejected { .. }
        ));
        assert_eq!(
            classify(429, "slow down", Some(Duration::from_secs(3))),
            WriteOutcome::Retry {
                after: Some(Duration::from_secs(3)),
                reason: "HTTP 429: slow down".into()
            }
        );
        for s in [401, 403, 404, 500, 502, 503] {
            assert!(
                matches!(classify(s, "", None), WriteOutcome::Retry { .. }),
                "{s}"
            );
        }
    }

    #[test]
    fn retry_after_seconds_are_parsed_and_capped() {
        assert_eq!(parse_retry_after(Some("7")), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after(Some("99999")),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
        assert_eq!(parse_retry_after(None), None);
    }
}
