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

/// The version the object holds, or why it could not be read.
pub async fn latest_version(http: &reqwest::Client, url: &str) -> Result<String, String> {
    let response = http.get(url).send().await.map_err(|e| {
        format!(
            "{url} did not answer: {}",
            crate::network::repos::describe_reqwest(&e)
        )
    })?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("{url} answered HTTP {}", status.as_u16()));
    }
    let text = response.text().await.map_err(|e| e.to_string())?;
    let version = text.trim();
    let looks_like_one = !version.is_empty()
        && version
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    if looks_like_one {
        Ok(version.to_string())
    } else {
        Err(format!(
            "{url} holds no version: `{}`",
            version.chars().take(40).collect::<String>()
        ))
    }
}
