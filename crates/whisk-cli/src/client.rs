//! A minimal asynchronous client for the OpenWhisk REST API. It knows URLs, authentication and the
//! error shape (`{"error": …, "code": …}`), and nothing about particular entities, so commands stay
//! thin and the same client serves actions, packages, triggers and rules.

use reqwest::{Method, Url};
use serde_json::Value;

/// Failures talking to the API.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a non-success status; `error`/`code` come from its JSON body.
    #[error("{}", describe_api_error(.error, .code.as_deref()))]
    Api {
        status: u16,
        error: String,
        code: Option<String>,
    },
    /// The reqwest error is the `source`, so `{:#}` prints its chain once, after this line.
    #[error("cannot reach the API")]
    Transport(#[from] reqwest::Error),
    #[error("cannot read the client {what} file '{path}': {source}")]
    ReadCredential {
        what: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// `--cert` without `--key` or the reverse: a client certificate needs both halves.
    #[error("a client certificate needs both --cert and --key (or CERT and KEY in the properties)")]
    HalfIdentity,
    #[error("the client certificate and key do not form a usable identity")]
    BadIdentity(#[source] reqwest::Error),
    #[error("cannot build a request URL from '{0}'")]
    BadUrl(String),
    #[error("the API answered with a body that is not JSON: {0}")]
    NotJson(String),
}

fn describe_api_error(error: &str, code: Option<&str>) -> String {
    match code {
        Some(code) => format!("{error} (code {code})"),
        None => error.to_string(),
    }
}

/// Credentials as `uuid:key`; kept separate so a missing key is a typed error, not a panic.
#[derive(Debug, Clone)]
pub struct Auth {
    pub user: String,
    pub key: String,
}

impl Auth {
    /// Splits `uuid:key`; a value without `:` is sent as user with an empty key and the server
    /// decides, as `wsk` does.
    pub fn parse(value: &str) -> Self {
        let (user, key) = value.split_once(':').unwrap_or((value, ""));
        Self {
            user: user.to_string(),
            key: key.to_string(),
        }
    }
}

/// How the client presents itself over TLS.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// `wsk -i`: accept any server certificate. Local and test deployments of OpenWhisk commonly
    /// serve self-signed ones, and users expect `-i` to get past them.
    pub insecure: bool,
    /// `--cert`/`--key` (or `CERT`/`KEY`): PEM files of a client certificate, for deployments
    /// whose edge authenticates clients by certificate.
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
}

impl TlsOptions {
    fn identity(&self) -> Result<Option<reqwest::Identity>, ClientError> {
        let (cert, key) = match (&self.cert, &self.key) {
            (None, None) => return Ok(None),
            (Some(cert), Some(key)) => (cert, key),
            _ => return Err(ClientError::HalfIdentity),
        };
        let read = |what, path: &std::path::PathBuf| {
            std::fs::read(path).map_err(|source| ClientError::ReadCredential {
                what,
                path: path.clone(),
                source,
            })
        };
        // rustls wants one PEM buffer holding the key and the certificate chain.
        let mut pem = read("key", key)?;
        pem.push(b'\n');
        pem.extend(read("certificate", cert)?);
        reqwest::Identity::from_pem(&pem)
            .map(Some)
            .map_err(ClientError::BadIdentity)
    }
}

/// One configured connection to an API host.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    auth: Option<Auth>,
    verbose: bool,
}

impl Client {
    /// `base` ends in `/api/v1/`. `verbose` echoes requests and responses on stderr for debugging.
    /// TLS is rustls with the ring provider and the Mozilla roots compiled in, so the binary
    /// needs no system OpenSSL or certificate store.
    pub fn new(
        base: Url,
        auth: Option<Auth>,
        verbose: bool,
        tls: &TlsOptions,
    ) -> Result<Self, ClientError> {
        let mut builder = reqwest::Client::builder().danger_accept_invalid_certs(tls.insecure);
        if let Some(identity) = tls.identity()? {
            builder = builder.identity(identity);
        }
        let http = builder
            .user_agent(concat!(
                "OpenWhisk-CLI/1.0 (whisk-rs ",
                env!("CARGO_PKG_VERSION"),
                ")"
            ))
            .build()?;
        Ok(Self {
            http,
            base,
            auth,
            verbose,
        })
    }

    /// Builds `base/segments…` with each segment percent-encoded, so names with spaces or `@` are
    /// addressed exactly.
    pub fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Result<Url, ClientError> {
        let mut url = self.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| ClientError::BadUrl(self.base.to_string()))?;
            path.pop_if_empty();
            path.extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        Ok(url)
    }

    /// Sends one request and returns the JSON body (`Null` when empty), or the API's error.
    pub async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let url = self.url(segments, query)?;
        self.send_url(method, url, body).await
    }

    /// `GET /` of the API host: the controller's description, with its limits and `runtimes`
    /// (which `/api/v1` does not list).
    pub async fn host_info(&self) -> Result<Value, ClientError> {
        let mut url = self.base.clone();
        url.set_path("/");
        url.set_query(None);
        self.send_url(Method::GET, url, None).await
    }

    async fn send_url(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        if self.verbose {
            eprintln!("REQUEST: [{method}] {url}");
            if let Some(body) = body {
                eprintln!("Req Body: {}", truncate(&body.to_string()));
            }
        }
        let mut request = self.http.request(method, url);
        if let Some(auth) = &self.auth {
            request = request.basic_auth(&auth.user, Some(&auth.key));
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        if self.verbose {
            eprintln!("RESPONSE: {status}");
            eprintln!("Response body: {}", truncate(&text));
        }
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        if status.is_success() {
            return match parsed {
                Some(value) => Ok(value),
                None if text.trim().is_empty() => Ok(Value::Null),
                None => Err(ClientError::NotJson(truncate(&text))),
            };
        }
        let error = parsed
            .as_ref()
            .and_then(|body| body.get("error"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| {
                status
                    .canonical_reason()
                    .unwrap_or("request failed")
                    .to_string()
            });
        let code = parsed
            .as_ref()
            .and_then(|body| body.get("code"))
            .and_then(|code| match code {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
        Err(ClientError::Api {
            status: status.as_u16(),
            error,
            code,
        })
    }
}

/// Verbose output is for eyes, so long bodies are cut at 1000 bytes (on a char boundary).
fn truncate(text: &str) -> String {
    const LIMIT: usize = 1000;
    if text.len() <= LIMIT {
        return text.to_string();
    }
    let mut end = LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
