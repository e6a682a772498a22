//! Who may use the HTTP API: bearer tokens, and JSON-only mutations.
//!
//! Every mutating request (`POST`) needs `Authorization: Bearer <token>` of a
//! configured token and a JSON body (`Content-Type: application/json`);
//! with `http.protect_reads` the reads (`/metrics`, `/api/v1/...`) need the
//! token too, while `/healthz` and `/readyz` stay open for probes. The JSON
//! rule is what stops cross-site requests: a web page can make a browser
//! POST a form or plain text anywhere without asking, but a JSON POST to
//! another origin needs a CORS preflight this API never grants, and a
//! browser never adds a bearer token by itself (RFC 6750 §2.1).
//!
//! Tokens come from `http.tokens_file` or the `WASTEWATCH_HTTP_TOKENS`
//! environment variable, never the config file, as `name:token` pairs; the
//! name is what an acknowledgement records as who made it. Only the
//! tokens' SHA-256 digests are kept, and a presented token is compared with
//! each digest in constant time. No token ever reaches a log line, an
//! error or a response.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Shortest token accepted (characters): guessing must be hopeless.
pub const MIN_TOKEN_LEN: usize = 24;

/// One configured token.
#[derive(Clone)]
struct Token {
    /// Who holds it (recorded with acknowledgements).
    name: String,
    /// SHA-256 of the token.
    digest: [u8; 32],
}

/// The API's access policy.
#[derive(Clone, Default)]
pub struct ApiAuth {
    tokens: Arc<Vec<Token>>,
    /// Reads need a token too.
    pub protect_reads: bool,
}

impl std::fmt::Debug for ApiAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiAuth")
            .field(
                "token_names",
                &self
                    .tokens
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("protect_reads", &self.protect_reads)
            .finish()
    }
}

fn digest(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Compares two digests without stopping at the first difference. (They
/// are SHA-256 digests, so even a leak of where they differ would tell an
/// attacker nothing about the token.)
fn digests_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// A valid token holder's name: `[A-Za-z0-9_.@-]`, 1-64 characters.
fn valid_name(n: &str) -> bool {
    (1..=64).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'@' | b'-'))
}

impl ApiAuth {
    /// No tokens: every mutation is refused.
    pub fn none() -> Self {
        ApiAuth::default()
    }

    /// True when at least one token is configured.
    pub fn has_tokens(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// Names of the configured tokens.
    pub fn names(&self) -> Vec<&str> {
        self.tokens.iter().map(|t| t.name.as_str()).collect()
    }

    /// Adds the `name:token` pairs of `text` (lines, or comma-separated;
    /// `#` starts a comment line); `source` names where they came from in
    /// errors, which never echo a token.
    pub fn add_tokens(&mut self, source: &str, text: &str, errors: &mut Vec<String>) {
        let mut tokens = (*self.tokens).clone();
        for (i, item) in text
            .lines()
            .flat_map(|l| l.split(','))
            .map(str::trim)
            .enumerate()
        {
            if item.is_empty() || item.starts_with('#') {
                continue;
            }
            let Some((name, token)) = item.split_once(':') else {
                errors.push(format!(
                    "{source}: entry {} is not name:token (value not shown)",
                    i + 1
                ));
                continue;
            };
            let (name, token) = (name.trim(), token.trim());
            if !valid_name(name) {
                errors.push(format!(
                    "{source}: token name {name:?} must be 1-64 of A-Z a-z 0-9 _ . @ -"
                ));
                continue;
            }
            if token.len() < MIN_TOKEN_LEN || token.chars().any(char::is_whitespace) {
                errors.push(format!(
                    "{source}: the token of {name:?} is shorter than {MIN_TOKEN_LEN} characters or holds spaces; use e.g. `openssl rand -hex 32`"
                ));
                continue;
            }
            if tokens.iter().any(|t| t.name == name) {
                errors.push(format!("{source}: token name {name:?} is given twice"));
                continue;
            }
            tokens.push(Token {
                name: name.to_owned(),
                digest: digest(token),
            });
        }
        self.tokens = Arc::new(tokens);
    }

    /// The name of the token in `headers`' `Authorization: Bearer`, if it
    /// is one of ours. Every digest is compared (constant time each), so
    /// the answer's timing does not tell which token was close.
    pub fn authenticate(&self, headers: &HeaderMap) -> Option<&str> {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let d = digest(token.trim());
        let mut found = None;
        for t in self.tokens.iter() {
            if digests_equal(&t.digest, &d) {
                found = Some(t.name.as_str());
            }
        }
        found
    }
}

/// The authenticated caller, for handlers (`Extension<Caller>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller(pub String);

fn unauthorized(why: &'static str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"wastewatch\"")],
        why,
    )
        .into_response()
}

/// True for `application/json`, with or without parameters.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// The middleware: health probes pass; mutations need a token and JSON;
/// reads need a token when `protect_reads`.
pub async fn require(State(auth): State<ApiAuth>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if path == "/healthz" || path == "/readyz" {
        return next.run(req).await;
    }
    let mutating = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !mutating && !auth.protect_reads {
        return next.run(req).await;
    }
    if !auth.has_tokens() {
        return (
            StatusCode::FORBIDDEN,
            "no API token is configured, so nothing may change through the API; set http.tokens_file or WASTEWATCH_HTTP_TOKENS\n",
        )
            .into_response();
    }
    let Some(name) = auth.authenticate(req.headers()).map(str::to_owned) else {
        tracing::debug!(path = %path, "api request without a valid bearer token refused");
        return unauthorized("a valid `Authorization: Bearer <token>` is required\n");
    };
    if mutating && !is_json(req.headers()) {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the request body as JSON with `Content-Type: application/json` (an empty object `{}` will do)\n",
        )
            .into_response();
    }
    req.extensions_mut().insert(Caller(name));
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const T1: &str = "0123456789abcdef0123456789abcdef";

    fn auth(text: &str) -> (ApiAuth, Vec<String>) {
        let mut a = ApiAuth::none();
        let mut e = Vec::new();
        a.add_tokens("test", text, &mut e);
        (a, e)
    }

    fn bearer(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn a_configured_token_authenticates_as_its_name_and_nothing_else_does() {
        let (a, e) = auth(&format!("# on-call\nalice:{T1}\nbob:{T1}x\n"));
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(
            a.authenticate(&bearer(&format!("Bearer {T1}"))),
            Some("alice")
        );
        assert_eq!(
            a.authenticate(&bearer(&format!("bearer {T1}x"))),
            Some("bob")
        );
        assert_eq!(a.authenticate(&bearer(&format!("Bearer {T1}y"))), None);
        assert_eq!(a.authenticate(&bearer(&format!("Basic {T1}"))), None);
        assert_eq!(a.authenticate(&HeaderMap::new()), None);
    }

    #[test]
    fn comma_separated_tokens_from_the_environment_are_read_too() {
        let (a, e) = auth(&format!("alice:{T1}, bob:{T1}z"));
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(a.names(), ["alice", "bob"]);
    }

    #[test]
    fn bad_entries_are_reported_without_their_token() {
        let (a, e) = auth("alice:short-secret-1\nno-colon-secret-2\nbad name:0123456789abcdef0123456789abcdef-3\n");
        assert!(!a.has_tokens());
        assert_eq!(e.len(), 3, "{e:?}");
        let all = e.join("\n");
        for secret in ["short-secret-1", "no-colon-secret-2", "abcdef-3"] {
            assert!(!all.contains(secret), "{all}");
        }
    }

    #[test]
    fn debug_shows_names_and_never_tokens_or_digests() {
        let (a, _) = auth(&format!("alice:{T1}"));
        let d = format!("{a:?}");
        assert!(d.contains("alice") && !d.contains(T1), "{d}");
    }

    #[test]
    fn only_application_json_counts_as_json() {
        let ct = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(v).unwrap());
            is_json(&h)
        };
        assert!(ct("application/json"));
        assert!(ct("Application/JSON; charset=utf-8"));
        assert!(!ct("application/x-www-form-urlencoded"));
        assert!(!ct("text/plain"));
        assert!(!is_json(&HeaderMap::new()));
    }
}
