//! The newest agent version AWS publishes for a region: the public object
//! `amazon-ssm-<region>/latest/VERSION`, read anonymously through the S3
//! endpoint (`endpoints.urls.s3`/`AWS_ENDPOINT_URL_S3` override it) and the
//! agent's proxy, as `ssm-cli get-diagnostics` compares it.

/// The object's URL for `region`, path-style on the S3 endpoint.
pub fn latest_version_url(s3_endpoint: &str, region: &str) -> String {
    format!(
        "{}/amazon-ssm-{region}/latest/VERSION",
        s3_endpoint.trim_end_matches('/')
    )
}

/// Why the region's newest version could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LatestError {
    #[error("{url} did not answer: {why}")]
    NoAnswer { url: String, why: String },
    #[error("{url} answered HTTP {status}")]
    Http { url: String, status: u16 },
    #[error("{url} holds no version: `{text}`")]
    NotAVersion { url: String, text: String },
}

/// The version the object holds, or why it could not be read.
pub async fn latest_version(http: &reqwest::Client, url: &str) -> Result<String, LatestError> {
    let no_answer = |why: String| LatestError::NoAnswer {
        url: url.to_string(),
        why,
    };
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| no_answer(crate::network::repos::describe_reqwest(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(LatestError::Http {
            url: url.to_string(),
            status: status.as_u16(),
        });
    }
    let text = response
        .text()
        .await
        .map_err(|e| no_answer(e.to_string()))?;
    let version = text.trim();
    let looks_like_one = !version.is_empty()
        && version
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    if looks_like_one {
        Ok(version.to_string())
    } else {
        Err(LatestError::NotAVersion {
            url: url.to_string(),
            text: version.chars().take(40).collect(),
        })
    }
}
