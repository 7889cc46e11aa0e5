//! Asking each configured repository for its index, as the package manager
//! would: through the agent's proxy, each request bounded.

use crate::host::repo_tls::RepoTls;
use crate::host::repos::Repo;
use crate::network::tls::RepoTlsError;
use crate::text::redact_url as redact;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

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
pub async fn fetch_all(
    indexes: &Indexes,
    clients: &Clients,
    repos: Vec<Repo>,
    timeout: Duration,
) -> Vec<Answer> {
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
                let mut result = get(indexes, client, &index, timeout).await;
                if let (Ok(404), Some(release)) = (&result, release_of(&index)) {
                    fetched = redact(&release);
                    result = get(indexes, client, &release, timeout).await;
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

async fn get(
    indexes: &Indexes,
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> Result<u16, FetchError> {
    indexes
        .get(client, url, timeout)
        .await
        .map(|got| got.status)
}

/// What one GET of an index gave: its status and, for a 2xx, its body.
#[derive(Debug, Clone)]
struct Got {
    status: u16,
    /// The body of a 2xx (empty otherwise), or why it was not read whole.
    body: Result<Vec<u8>, FetchError>,
}

/// The indexes asked in one run, by URL, each asked once: `repo.reachable`
/// wants its status and `repo.signature` its body, and a mirror (or the
/// proxy before it) need not serve the same `InRelease` twice a run.
#[derive(Debug, Default)]
pub struct Indexes(std::sync::Mutex<HashMap<String, Arc<IndexCell>>>);

/// One index's answer, settled by its first asker.
type IndexCell = OnceCell<Result<Got, FetchError>>;

impl Indexes {
    /// `url`'s answer: the first asker's request, which later askers (of
    /// either check) wait on rather than repeat.
    async fn get(
        &self,
        client: &reqwest::Client,
        url: &str,
        timeout: Duration,
    ) -> Result<Got, FetchError> {
        let cell = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(url.to_string())
            .or_default()
            .clone();
        cell.get_or_init(|| fetch_index(client, url, timeout))
            .await
            .clone()
    }
}

/// One GET of `url` within `timeout`: the status, and a 2xx's body of at
/// most `INDEX_LIMIT` bytes.
async fn fetch_index(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> Result<Got, FetchError> {
    // A source URL may carry `user:password@`: named redacted, and
    // reqwest's errors without it.
    let shown = redact(url);
    let failed = |e: reqwest::Error| FetchError::Failed(describe_reqwest(&e.without_url()));
    let read = async {
        let mut response = client.get(url).send().await.map_err(failed)?;
        let status = response.status();
        if !status.is_success() {
            return Ok(Got {
                status: status.as_u16(),
                body: Ok(Vec::new()),
            });
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) if body.len() + chunk.len() > INDEX_LIMIT => {
                    let why = format!(
                        "{shown}: larger than {} MiB, not an index",
                        INDEX_LIMIT >> 20
                    );
                    return Ok(Got {
                        status: status.as_u16(),
                        body: Err(FetchError::Failed(why)),
                    });
                }
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => {
                    return Ok(Got {
                        status: status.as_u16(),
                        body: Err(failed(e)),
                    })
                }
            }
        }
        Ok(Got {
            status: status.as_u16(),
            body: Ok(body),
        })
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or(Err(FetchError::TimedOut(timeout)))
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
    indexes: &Indexes,
    client: &reqwest::Client,
    index: &str,
    timeout: Duration,
) -> Result<SignedIndex, FetchError> {
    match get_body(indexes, client, index, timeout).await? {
        Some(body) => Ok(SignedIndex {
            url: redact(index),
            body,
            signature: None,
        }),
        None => {
            let release = release_of(index).unwrap_or_else(|| index.to_string());
            let body = get_body(indexes, client, &release, timeout)
                .await?
                .ok_or_else(|| FetchError::Failed(format!("{}: HTTP 404", redact(&release))))?;
            let signature = get_body(indexes, client, &format!("{release}.gpg"), timeout).await?;
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
    indexes: &Indexes,
    client: &reqwest::Client,
    repomd: &str,
    timeout: Duration,
) -> Result<SignedIndex, FetchError> {
    let body = get_body(indexes, client, repomd, timeout)
        .await?
        .ok_or_else(|| FetchError::Failed(format!("{}: HTTP 404", redact(repomd))))?;
    let signature = get_body(indexes, client, &format!("{repomd}.asc"), timeout).await?;
    Ok(SignedIndex {
        url: redact(repomd),
        body,
        signature,
    })
}

/// A body of at most `INDEX_LIMIT` bytes; `None` for a 404; any other
/// status but 2xx is an error naming it.
async fn get_body(
    indexes: &Indexes,
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> Result<Option<Vec<u8>>, FetchError> {
    let got = indexes.get(client, url, timeout).await?;
    match got.status {
        404 => Ok(None),
        200..=299 => got.body.map(Some),
        status => Err(FetchError::Failed(format!(
            "{}: HTTP {status}",
            redact(url)
        ))),
    }
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
        let indexes = Indexes::default();
        let answers = fetch_all(&indexes, &clients, vec![repo], Duration::from_secs(5)).await;
        // What is shown of an answer: what was fetched and what went wrong.
        let a = &answers[0];
        let said = format!("{} {:?}", a.fetched, a.result);
        assert!(a.result.is_err(), "{said}");
        assert!(
            !said.contains("s3cret") && said.contains("ci:***@127.0.0.1:1"),
            "{said}"
        );
        let fetched = fetch_apt_index(&indexes, &base, index, Duration::from_secs(5)).await;
        let said = format!("{fetched:?}");
        assert!(fetched.is_err() && !said.contains("s3cret"), "{said}");
    }

    /// A loopback HTTP server answering every request with `body`,
    /// counting the requests for each path.
    async fn counting_server(
        body: &'static str,
    ) -> (String, Arc<std::sync::Mutex<HashMap<String, usize>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<std::sync::Mutex<HashMap<String, usize>>> = Default::default();
        let counts = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let counts = counts.clone();
                tokio::spawn(async move {
                    let mut request = vec![0u8; 4096];
                    let n = tcp.read(&mut request).await.unwrap_or(0);
                    let text = String::from_utf8_lossy(&request[..n]).to_string();
                    let path = text.split(' ').nth(1).unwrap_or_default().to_string();
                    *counts.lock().unwrap().entry(path).or_default() += 1;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tcp.write_all(answer.as_bytes()).await;
                });
            }
        });
        (base, seen)
    }

    #[tokio::test]
    async fn both_repository_checks_ask_an_index_once_between_them() {
        let (base, seen) = counting_server("signed index").await;
        let index = format!("{base}/debian/dists/stable/InRelease");
        let repo = Repo::Fetch {
            name: format!("apt: {base}/debian stable"),
            file: "/etc/apt/sources.list".into(),
            index: index.clone(),
            list_kind: None,
            tls: RepoTls::default(),
            keys: Keys::Unsaid,
        };
        let tls = crate::network::tls::client_config(None).unwrap();
        let base_client = client(tls, None, &[], Duration::from_secs(2)).unwrap();
        let clients = clients(
            std::slice::from_ref(&repo),
            &base_client,
            |_| unreachable!(),
        );
        let indexes = Indexes::default();
        let timeout = Duration::from_secs(5);
        // As the two checks do: at once, one for the status, one for the body.
        let (answers, signed) = tokio::join!(
            fetch_all(&indexes, &clients, vec![repo], timeout),
            fetch_apt_index(&indexes, &base_client, &index, timeout)
        );
        assert_eq!(answers[0].result, Ok(200));
        assert_eq!(signed.unwrap().body, b"signed index");
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            HashMap::from([("/debian/dists/stable/InRelease".to_string(), 1)])
        );
    }
}
