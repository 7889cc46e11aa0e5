//! How the node is known to SSM: an EC2 instance (IMDSv2 through
//! `aws_config::imds::Client`: tokens, retries and the endpoint override
//! `AWS_EC2_METADATA_SERVICE_ENDPOINT` come with it) or a hybrid node (the
//! agent's registration file; never its vault). IMDS is asked only in `ec2`
//! mode.

use crate::host::mode::{Detected, Mode, REGISTRATION_FILE};
use crate::host::{read_within, Root};
use aws_config::imds;
use aws_config::provider_config::ProviderConfig;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub mode: Mode,
    pub instance_id: String,
    pub region: String,
    pub account_id: Option<String>,
    /// EC2 only: the instance profile's role and its credentials' state.
    pub role: Option<Role>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// No instance profile attached (the role listing is 404).
    None,
    /// A role, and what IMDS says of its credentials (`Code`, `Expiration`).
    Attached {
        name: String,
        code: String,
        expiration: Option<String>,
    },
    /// IMDS could not be asked about the role.
    Unknown(String),
}

/// Why there is no identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityError {
    /// `local` mode, or IMDS disabled by the environment: not looked for.
    NotLooked(String),
    /// Looked, and could not tell.
    Failed { what: String, remedy: String },
}

/// IMDS answers within a few milliseconds on EC2; these bounds keep a run
/// off EC2 (forced `--mode ec2`) from waiting long.
const IMDS_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const IMDS_READ_TIMEOUT: Duration = Duration::from_secs(1);
const IMDS_ATTEMPTS: u32 = 2;

/// Whether the environment turns IMDS off, as the AWS SDKs read it.
pub fn imds_disabled_by_env() -> bool {
    std::env::var("AWS_EC2_METADATA_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The IMDSv2 client, with our HTTP client and an endpoint from the config
/// when it sets one (else `AWS_EC2_METADATA_SERVICE_ENDPOINT` or the default).
pub fn imds_client(endpoint: Option<&str>) -> Result<imds::Client, String> {
    let provider = ProviderConfig::default().with_http_client(super::sdk_http_client());
    let mut builder = imds::Client::builder()
        .configure(&provider)
        .connect_timeout(IMDS_CONNECT_TIMEOUT)
        .read_timeout(IMDS_READ_TIMEOUT)
        .max_attempts(IMDS_ATTEMPTS);
    if let Some(url) = endpoint {
        builder = builder
            .endpoint(url)
            .map_err(|e| format!("aws.imds_endpoint `{url}` is not a URL: {e}"))?;
    }
    Ok(builder.build())
}

/// An IMDS answer: `Ok(None)` for 404 (no such item), `Err` for no answer.
pub async fn imds_get(client: &imds::Client, path: &str) -> Result<Option<String>, String> {
    match client.get(path).await {
        Ok(value) => Ok(Some(value.as_ref().to_string())),
        Err(imds::client::error::ImdsError::ErrorResponse(r))
            if r.response().status().as_u16() == 404 =>
        {
            Ok(None)
        }
        Err(e) => Err(describe_imds_error(&e)),
    }
}

fn describe_imds_error(e: &imds::client::error::ImdsError) -> String {
    use imds::client::error::ImdsError as E;
    match e {
        E::FailedToLoadToken(t) if t.is_dispatch_failure() => {
            "the instance metadata service did not answer (no IMDSv2 token)".into()
        }
        E::FailedToLoadToken(_) => "the instance metadata service refused an IMDSv2 token (hop limit 1 behind a container, or IMDS turned off)".into(),
        E::ErrorResponse(r) => format!("the instance metadata service answered HTTP {}", r.response().status().as_u16()),
        other => format!("{other}"),
    }
}

#[derive(serde::Deserialize)]
struct IdentityDocument {
    #[serde(rename = "instanceId")]
    instance_id: String,
    region: String,
    #[serde(rename = "accountId")]
    account_id: Option<String>,
}

#[derive(serde::Deserialize)]
struct RoleCredentials {
    #[serde(rename = "Code")]
    code: Option<String>,
    #[serde(rename = "Expiration")]
    expiration: Option<String>,
}

#[derive(serde::Deserialize)]
struct Registration {
    #[serde(rename = "ManagedInstanceID")]
    instance_id: Option<String>,
    #[serde(rename = "Region")]
    region: Option<String>,
}

const IMDS_REMEDY: &str = "Check that the instance metadata service is enabled for this instance (`aws ec2 describe-instances --query 'Reservations[].Instances[].MetadataOptions'`: HttpEndpoint enabled, HttpPutResponseHopLimit at least 2 if the agent runs in a container) and that no firewall rule on the host blocks 169.254.169.254.";

/// Finds the node's identity for its mode.
pub async fn lookup(
    root: &Root,
    detected: &Detected,
    imds_endpoint: Option<&str>,
) -> Result<Identity, IdentityError> {
    match detected.mode {
        Mode::Local => Err(IdentityError::NotLooked(
            "local mode: neither IMDS nor a hybrid registration is consulted".into(),
        )),
        Mode::Hybrid => hybrid(root),
        Mode::Ec2 => {
            if imds_disabled_by_env() {
                return Err(IdentityError::NotLooked("AWS_EC2_METADATA_DISABLED is true, so the instance metadata service is not asked".into()));
            }
            let client = imds_client(imds_endpoint).map_err(|e| IdentityError::Failed {
                what: e,
                remedy: "Fix aws.imds_endpoint in the ssm-preflight config.".into(),
            })?;
            from_imds(&client).await
        }
    }
}

fn hybrid(root: &Root) -> Result<Identity, IdentityError> {
    // Bounded: the registration lives under /var, which may be a hung mount.
    let text = read_within(&root.path(REGISTRATION_FILE), std::time::Duration::from_secs(1))
        .map_err(|e| IdentityError::Failed {
            what: format!("cannot read {REGISTRATION_FILE}: {e}"),
            remedy: "Run ssm-preflight as root.".into(),
        })?
        .ok_or_else(|| IdentityError::Failed {
            what: format!("this node is in hybrid mode but {REGISTRATION_FILE} does not exist: it is not registered"),
            remedy: "Register it with an activation: `sudo amazon-ssm-agent -register -code CODE -id ID -region REGION`, then restart the agent.".into(),
        })?;
    let reg: Registration = serde_json::from_str(&text).map_err(|e| IdentityError::Failed {
        what: format!("{REGISTRATION_FILE} is not the agent's registration JSON: {e}"),
        remedy: "Register the node again: `sudo amazon-ssm-agent -register -code CODE -id ID -region REGION -y`.".into(),
    })?;
    match (reg.instance_id, reg.region) {
        (Some(id), Some(region)) if !id.is_empty() && !region.is_empty() => Ok(Identity {
            mode: Mode::Hybrid,
            instance_id: id,
            region,
            account_id: None,
            role: None,
        }),
        _ => Err(IdentityError::Failed {
            what: format!("{REGISTRATION_FILE} lacks ManagedInstanceID or Region"),
            remedy: "Register the node again: `sudo amazon-ssm-agent -register -code CODE -id ID -region REGION -y`.".into(),
        }),
    }
}

/// The identity as IMDSv2 tells it: the identity document and the role.
pub async fn from_imds(client: &imds::Client) -> Result<Identity, IdentityError> {
    let failed = |what: String| IdentityError::Failed {
        what,
        remedy: IMDS_REMEDY.into(),
    };
    let document = imds_get(client, "/latest/dynamic/instance-identity/document")
        .await
        .map_err(failed)?
        .ok_or_else(|| failed("the instance metadata service has no identity document".into()))?;
    let doc: IdentityDocument = serde_json::from_str(&document).map_err(|e| {
        failed(format!(
            "the identity document is not JSON the tool understands: {e}"
        ))
    })?;
    let role = match imds_get(client, "/latest/meta-data/iam/security-credentials/").await {
        Ok(None) => Role::None,
        Ok(Some(listing)) => match listing.lines().map(str::trim).find(|l| !l.is_empty()) {
            None => Role::None,
            Some(name) => {
                let path = format!("/latest/meta-data/iam/security-credentials/{name}");
                match imds_get(client, &path).await {
                    Ok(Some(json)) => {
                        let creds: Option<RoleCredentials> = serde_json::from_str(&json).ok();
                        Role::Attached {
                            name: name.to_string(),
                            code: creds
                                .as_ref()
                                .and_then(|c| c.code.clone())
                                .unwrap_or_else(|| "unknown".into()),
                            expiration: creds.and_then(|c| c.expiration),
                        }
                    }
                    Ok(None) => {
                        Role::Unknown(format!("the role {name} is listed but has no credentials"))
                    }
                    Err(e) => Role::Unknown(e),
                }
            }
        },
        Err(e) => Role::Unknown(e),
    };
    Ok(Identity {
        mode: Mode::Ec2,
        instance_id: doc.instance_id,
        region: doc.region,
        account_id: doc.account_id,
        role: Some(role),
    })
}
