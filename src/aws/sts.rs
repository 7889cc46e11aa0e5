//! `sts:GetCallerIdentity` signed with the node's own credentials, through
//! the regional STS endpoint: whether AWS accepts them, as whom, and until
//! when. It needs no IAM permission, so a refusal is about the credentials
//! (expired, invalid) or the clock, never about the role's policy — unless
//! an explicit deny (an SCP) says AccessDenied.

use super::query;
use std::time::SystemTime;

/// Who AWS says the credentials are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub arn: String,
    pub account: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StsError {
    /// The provider gave no credentials (credentials.role says why).
    NoCredentials(String),
    /// No answer: DNS, TCP, TLS, the proxy, a timeout.
    NoAnswer(String),
    /// STS answered with an error.
    Refused { code: String, message: String },
}

/// What the look found: the answer, and the credentials' expiry when they have one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Looked {
    pub caller: Result<Caller, StsError>,
    pub expiry: Option<SystemTime>,
}

pub const BODY: &str = "Action=GetCallerIdentity&Version=2011-06-15";

/// Asks STS at `endpoint` who the provider's credentials are.
pub async fn caller(
    http: &reqwest::Client,
    endpoint: &str,
    region: &str,
    provider: &aws_credential_types::provider::SharedCredentialsProvider,
) -> Looked {
    let credentials = match query::resolve(provider).await {
        Ok(c) => c,
        Err(why) => {
            return Looked {
                caller: Err(StsError::NoCredentials(why.to_string())),
                expiry: None,
            }
        }
    };
    let expiry = credentials.expiry();
    let caller = match query::post(http, endpoint, region, "sts", &credentials, BODY).await {
        Err(why) => Err(StsError::NoAnswer(why.to_string())),
        Ok(answer) => parse(&answer),
    };
    Looked { caller, expiry }
}

/// A GetCallerIdentity answer, success or error.
pub fn parse(answer: &query::Answer) -> Result<Caller, StsError> {
    if (200..300).contains(&answer.status) {
        let arn = query::xml_values(&answer.body, "Arn").into_iter().next();
        let account = query::xml_values(&answer.body, "Account")
            .into_iter()
            .next();
        return match (arn, account) {
            (Some(arn), Some(account)) => Ok(Caller { arn, account }),
            _ => Err(StsError::NoAnswer(format!(
                "STS answered HTTP {} without an Arn and Account",
                answer.status
            ))),
        };
    }
    let (code, message) = answer
        .error()
        .unwrap_or_else(|| (format!("HTTP {}", answer.status), String::new()));
    Err(StsError::Refused { code, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_as_sts_writes_them() {
        let ok = query::Answer {
            status: 200,
            body: r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:sts::123456789012:assumed-role/SSMCore/i-0test</Arn>
    <UserId>AROAEXAMPLE:i-0test</UserId>
    <Account>123456789012</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata><RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>"#
                .into(),
        };
        assert_eq!(
            parse(&ok),
            Ok(Caller {
                arn: "arn:aws:sts::123456789012:assumed-role/SSMCore/i-0test".into(),
                account: "123456789012".into()
            })
        );
        let expired = query::Answer {
            status: 403,
            body: "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>ExpiredToken</Code><Message>The security token included in the request is expired</Message></Error><RequestId>r</RequestId></ErrorResponse>".into(),
        };
        assert_eq!(
            parse(&expired),
            Err(StsError::Refused {
                code: "ExpiredToken".into(),
                message: "The security token included in the request is expired".into()
            })
        );
    }
}
