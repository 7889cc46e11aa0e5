//! Asking each configured repository for its index, as the package manager
//! would: through the agent's proxy, each request bounded.

use crate::host::repo_tls::RepoTls;
use crate::host::repos::Repo;
use crate::network::tls::RepoTlsError;
use crate::text::redact_url as redact;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// An HTTP client that goes where the patch run would: the agent's proxy
/// when the agent has one, straight otherwise.
///
/// `proxy`: the agent's settings, or `None` when they are unknown (ours then
/// stand in for them). `headers`: sent with every request.
/// `connect_within`: how long a connection, its TLS handshake included, may
/// take (`endpoints.timeout`): past it a black-holed network is said, not
/// waited on until the whole call's bound.
pub fn client(
    tls: std::sync::Arc<rustls::ClientConfig>,
    proxy: Option<&crate::network::proxy::AgentProxy>,
    headers: &[(&'static str, String)],
    connect_within: std::time::Duration,
) -> Result<reqwest::Client, ClientError> {
    let mut default_headers = reqwest::header::HeaderMap::new();
    for (name, value) in headers {
        let value =
            reqwest::header::HeaderValue::from_str(value).map_err(|e| ClientError::Header {
                name,
                why: e.to_string(),
            })?;
        default_headers.insert(*name, value);
    }
    let mut builder = reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .default_headers(default_headers)
        .user_agent(concat!("ssm-preflight/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(connect_within)
        .redirect(reqwest::redirect::Policy::limited(5));
    match proxy {
        Some(p) if p.any() => {
            let no_proxy = p
                .no_proxy
                .as_deref()
                .and_then(reqwest::NoProxy::from_string);
            if let Some(url) = p.https_proxy.as_deref() {
                builder = builder.proxy(
                    reqwest::Proxy::https(url)
                        .map_err(|e| unusable_proxy(url, e))?
                        .no_proxy(no_proxy.clone()),
                );
            }
            if let Some(url) = p.http_proxy.as_deref() {
                builder = builder.proxy(
                    reqwest::Proxy::http(url)
                        .map_err(|e| unusable_proxy(url, e))?
                        .no_proxy(no_proxy),
                );
            }
        }
        Some(_) => builder = builder.no_proxy(),
        None => {} // the agent's environment is unknown: ours stands in for it
    }
    builder
        .build()
        .map_err(|e| ClientError::Build(e.without_url()))
}

/// Why a proxy setting cannot be used, without its password (reqwest's
/// error would carry the URL as written).
/// Why no HTTP client could be made; a proxy is named without its password.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the proxy {proxy} is unusable: {why}")]
    UnusableProxy { proxy: String, why: reqwest::Error },
    #[error("{0}")]
    Build(reqwest::Error),
    #[error("the {name} header cannot be sent: {why}")]
    Header { name: &'static str, why: String },
}

fn unusable_proxy(url: &str, e: reqwest::Error) -> ClientError {
    ClientError::UnusableProxy {
        proxy: redact(url),
        why: e.without_url(),
    }
}

/// One repository's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub repo: Repo,
    /// `Ok(status)` for any HTTP answer; `Err` for none.
    pub result: Result<u16, FetchError>,
    pub fetched: String,
    pub elapsed: Duration,
}

/// An HTTP client per distinct TLS setting of the repositories: `base`
/// for the system's trust, one made by `make` for each other (or why it
/// could not be made).
pub type Clients = HashMap<RepoTls, Result<reqwest::Client, RepoTlsError>>;

pub fn clients(
    repos: &[Repo],
    base: &reqwest::Client,
    make: impl Fn(&RepoTls) -> Result<reqwest::Client, RepoTlsError>,
) -> Clients {
    let mut out = Clients::new();
    for r in repos {
        if let Repo::Fetch { tls, .. } = r {
            out.entry(tls.clone()).or_insert_with(|| {
                if tls.is_default() {
                    Ok(base.clone())
                } else {
                    make(tls)
                }
            });
        }
    }
    out
}

/// Asks every repository at once, each bounded by `timeout`, each with the
/// TLS its package manager uses (a mirror list too).
pub async fn fetch_all(clients: &Clients, repos: Vec<Repo>, timeout: Duration) -> Vec<Answer> {
    let asks = repos.into_iter().filter_map(|repo| match &repo {
        Repo::Fetch { index, tls, .. } => {
            let index = index.clone();
            let client = clients.get(tls).cloned();
            Some(async move {
                let started = Instant::now();
                // Shown, so without a password the source's URL may carry.
                let mut fetched = redact(&index);
                let client = match client {
                    Some(Ok(c)) => c,
                    Some(Err(e)) => {
                        return Answer {
                            repo,
                            result: Err(match e {
                                RepoTlsError::Unusable(why) => FetchError::Unusable(why),
                                RepoTlsError::NotReadable(why) => FetchError::NotReadable(why),
                            }),
                            fetched,
                            elapsed: started.elapsed(),
                        }
                    }
                    None => {
                        return Answer {
                            repo,
                            result: Err(FetchError::Unusable(
                                "no client was made for its TLS settings".into(),
                            )),
                            fetched,
                            elapsed: started.elapsed(),
                        }
                    }
                };
                let client = &client;
                let mut result = get(client, &index, timeout).await;
                if let (Ok(404), Some(release)) = (&result, release_of(&index)) {
                    fetched = redact(&release);
                    result = get(client, &release, timeout).await;
                }
                Answer {
                    repo,
                    result,
                    fetched,
                    elapsed: started.elapsed(),
                }
            })
        }
        Repo::Skip { .. } => None,
    });
    futures_util::future::join_all(asks).await
}

/// Why a repository's index gave no HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The request failed, its causes in one sentence.
    #[error("{0}")]
    Failed(String),
    #[error("no answer within {}", humantime::format_duration(*.0))]
    TimedOut(Duration),
    /// Its TLS settings name a file that cannot be used: not asked, as the
    /// package manager could not ask it either.
    #[error("{0}")]
    Unusable(String),
    /// Its TLS settings name a file this user may not read: not asked.
    #[error("{0}")]
    NotReadable(String),
}

async fn get(client: &reqwest::Client, url: &str, timeout: Duration) -> Result<u16, FetchError> {
    match tokio::time::timeout(timeout, client.get(url).send()).await {
        Ok(Ok(response)) => Ok(response.status().as_u16()),
        // Without the URL, which may carry a source's password.
        Ok(Err(e)) => Err(FetchError::Failed(describe_reqwest(&e.without_url()))),
        Err(_) => Err(FetchError::TimedOut(timeout)),
    }
}

/// apt's `Release`, which it asks for when a repository has no `InRelease`.
fn release_of(index: &str) -> Option<String> {
    index
        .strip_suffix("InRelease")
        .filter(|base| base.ends_with('/'))
        .map(|base| format!("{base}Release"))
}

/// A repository's signed index, as apt fetches it: `InRelease`, or
/// `Release` with its detached `Release.gpg` when there is no `InRelease`
/// (for yum/dnf's `repo_gpgcheck`: `repomd.xml` and `repomd.xml.asc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIndex {
    /// What was fetched, for the details (a password in it redacted).
    pub url: String,
    pub body: Vec<u8>,
    /// The detached signature; `None`: `body` carries its own, or none was
    /// published.
    pub signature: Option<Vec<u8>>,
}

/// An index is a few hundred KiB (Debian's `InRelease`: 150 KiB); more
/// than this is not an index.
const INDEX_LIMIT: usize = 16 << 20;

/// apt's index of `index` (an `…/InRelease` URL) with its signature.
pub async fn fetch_apt_index(
    client: &reqwest::Client,
    index: &str,
    timeout: Duration,
) -> Result<SignedIndex, FetchError> {
    match get_body(client, index, timeout).await? {
        Some(body) => Ok(SignedIndex {
            url: redact(index),
            body,
            signature: None,
        }),
        None => {
            let release = release_of(index).unwrap_or_else(|| index.to_string());
            let body = get_body(client, &release, timeout)
                .await?
                .ok_or_else(|| FetchError::Failed(format!("{}: HTTP 404", redact(&release))))?;
            let signature = get_body(client, &format!("{release}.gpg"), timeout).await?;
            Ok(SignedIndex {
                url: redact(&release),
                body,
                signature,
            })
        }
    }
}

/// An rpm-md repository's `repomd.xml` and its detached `repomd.xml.asc`.
pub async fn fetch_repomd(
    client: &reqwest::Client,
    repomd: &str,
    timeout: Duration,
) -> Result<SignedIndex, FetchError> {
    let body = get_body(client, repomd, timeout)
        .await?
        .ok_or_else(|| FetchError::Failed(format!("{}: HTTP 404", redact(repomd))))?;
    let signature = get_body(client, &format!("{repomd}.asc"), timeout).await?;
    Ok(SignedIndex {
        url: redact(repomd),
        body,
        signature,
    })
}

/// A body of at most `INDEX_LIMIT` bytes; `None` for a 404; any other
/// status but 2xx is an error naming it.
async fn get_body(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> Result<Option<Vec<u8>>, FetchError> {
    // A source URL may carry `user:password@`: named redacted, and
    // reqwest's errors without it.
    let shown = redact(url);
    let failed = |e: reqwest::Error| FetchError::Failed(describe_reqwest(&e.without_url()));
    let read = async {
        let mut response = client.get(url).send().await.map_err(failed)?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(FetchError::Failed(format!(
                "{shown}: HTTP {}",
                status.as_u16()
            )));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > INDEX_LIMIT {
                return Err(FetchError::Failed(format!(
                    "{shown}: larger than {} MiB, not an index",
                    INDEX_LIMIT >> 20
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Some(body))
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or(Err(FetchError::TimedOut(timeout)))
}

pub fn describe_reqwest(e: &reqwest::Error) -> String {
    // The client's connect bound (endpoints.timeout), its TLS handshake
    // included: said as what it is, not as hyper's chain of wrappers.
    if e.is_connect() && e.is_timeout() {
        return "no answer while connecting (TCP or its TLS handshake) within endpoints.timeout"
            .into();
    }
    let mut parts = vec![e.to_string()];
    let mut next = std::error::Error::source(e);
    while let Some(s) = next {
        parts.push(s.to_string());
        next = s.source();
    }
    parts.dedup();
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::repos::Keys;

    #[tokio::test]
    async fn a_source_s_password_is_in_no_answer() {
        // Nothing listens on port 1 of loopback: refused at once.
        let index = "http://ci:s3cret@127.0.0.1:1/debian/dists/stable/InRelease";
        let repo = Repo::Fetch {
            name: "apt: http://ci:***@127.0.0.1:1/debian stable".into(),
            file: "/etc/apt/sources.list".into(),
            index: index.into(),
            list_kind: None,
            tls: RepoTls::default(),
            keys: Keys::Unsaid,
        };
        let tls = crate::network::tls::client_config(None).unwrap();
        let base = client(tls, None, &[], Duration::from_secs(2)).unwrap();
        let clients = clients(std::slice::from_ref(&repo), &base, |_| unreachable!());
        let answers = fetch_all(&clients, vec![repo], Duration::from_secs(5)).await;
        // What is shown of an answer: what was fetched and what went wrong.
        let a = &answers[0];
        let said = format!("{} {:?}", a.fetched, a.result);
        assert!(a.result.is_err(), "{said}");
        assert!(
            !said.contains("s3cret") && said.contains("ci:***@127.0.0.1:1"),
            "{said}"
        );
        let fetched = fetch_apt_index(&base, index, Duration::from_secs(5)).await;
        let said = format!("{fetched:?}");
        assert!(fetched.is_err() && !said.contains("s3cret"), "{said}");
    }
}
