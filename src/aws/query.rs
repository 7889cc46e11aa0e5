//! One signed request in AWS's Query protocol (a form POST, an XML answer),
//! made with aws-sigv4 and reqwest. For the calls whose SDK crate would
//! cost minutes of build and megabytes of binary for one operation each
//! (`ec2:DescribeTags`, `sts:GetCallerIdentity`; figures in BENCHMARKS.md).

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use std::time::SystemTime;

/// The HTTP status and body of an answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    /// The `<Code>` and `<Message>` of an error answer.
    pub fn error(&self) -> Option<(String, String)> {
        let code = xml_values(&self.body, "Code").into_iter().next()?;
        let message = xml_values(&self.body, "Message")
            .into_iter()
            .next()
            .unwrap_or_default();
        Some((code, message))
    }
}

/// A credentials provider gave none.
#[derive(Debug, thiserror::Error)]
#[error("no credentials to sign with: {0}")]
pub struct NoCredentials(#[source] aws_credential_types::provider::error::CredentialsError);

/// The credentials a provider gives now, or why it gives none.
pub async fn resolve(provider: &SharedCredentialsProvider) -> Result<Credentials, NoCredentials> {
    provider.provide_credentials().await.map_err(NoCredentials)
}

/// Why a signed request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// The request could not be built or signed.
    #[error("{0}")]
    Sign(String),
    /// It was sent and no (whole) answer came back.
    #[error("{0}")]
    NoAnswer(String),
}

/// Signs `body` for `service` in `region` with the credentials and POSTs
/// it to `endpoint`. `Err` says why no answer came (the request could not
/// be built or sent).
pub async fn post(
    http: &reqwest::Client,
    endpoint: &str,
    region: &str,
    service: &str,
    credentials: &Credentials,
    body: &str,
) -> Result<Answer, PostError> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    let identity = credentials.clone().into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| PostError::Sign(e.to_string()))?
        .into();
    let url = format!("{}/", endpoint.trim_end_matches('/'));
    let content_type = (
        "content-type",
        "application/x-www-form-urlencoded; charset=utf-8",
    );
    let signable = SignableRequest::new(
        "POST",
        &url,
        std::iter::once(content_type),
        SignableBody::Bytes(body.as_bytes()),
    )
    .map_err(|e| PostError::Sign(e.to_string()))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| PostError::Sign(e.to_string()))?
        .into_parts();
    let mut request = http::Request::builder()
        .method("POST")
        .uri(&url)
        .header(content_type.0, content_type.1)
        .body(body.to_string())
        .map_err(|e| PostError::Sign(e.to_string()))?;
    instructions.apply_to_request_http1x(&mut request);
    let request =
        reqwest::Request::try_from(request).map_err(|e| PostError::Sign(e.to_string()))?;
    let response = http
        .execute(request)
        .await
        .map_err(|e| PostError::NoAnswer(crate::network::repos::describe_reqwest(&e)))?;
    let status = response.status().as_u16();
    let body = response
        .text()
        .await
        .map_err(|e| PostError::NoAnswer(e.to_string()))?;
    Ok(Answer { status, body })
}

/// The text of every `<element>` in `xml`, entities decoded. The answers
/// read here have one fixed, flat shape each, so a scan for the elements
/// does what an XML crate would.
pub fn xml_values(xml: &str, element: &str) -> Vec<String> {
    let open = format!("<{element}>");
    let close = format!("</{element}>");
    xml.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split(&close).next())
        .map(|raw| {
            raw.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_give_their_code_and_message() {
        let a = Answer {
            status: 403,
            body: "<ErrorResponse><Error><Type>Sender</Type><Code>ExpiredToken</Code><Message>The security token included in the request is expired</Message></Error></ErrorResponse>".into(),
        };
        assert_eq!(
            a.error(),
            Some((
                "ExpiredToken".into(),
                "The security token included in the request is expired".into()
            ))
        );
        assert_eq!(
            xml_values("<a><Code>x &amp; y</Code></a>", "Code"),
            vec!["x & y"]
        );
    }
}
