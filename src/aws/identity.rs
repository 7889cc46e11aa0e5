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
    /// A role is attached (what IMDS says of its credentials is
    /// `role_status`, read apart: nothing else waits for it).
    Attached { name: String },
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
pub fn imds_client(endpoint: Option<&str>) -> Result<imds::Client, ImdsError> {
    let https = endpoint
        .map(str::to_string)
        .or_else(|| std::env::var("AWS_EC2_METADATA_SERVICE_ENDPOINT").ok())
        .is_some_and(|url| url.to_ascii_lowercase().starts_with("https:"));
    let http = if https {
        super::sdk_http_client()
    } else {
        super::sdk_plain_http_client()
    };
    let provider = ProviderConfig::default().with_http_client(http);
    let mut builder = imds::Client::builder()
        .configure(&provider)
        .connect_timeout(IMDS_CONNECT_TIMEOUT)
        .read_timeout(IMDS_READ_TIMEOUT)
        .max_attempts(IMDS_ATTEMPTS);
    if let Some(url) = endpoint {
        builder = builder.endpoint(url).map_err(|e| ImdsError::BadEndpoint {
            url: url.to_string(),
            why: e.to_string(),
        })?;
    }
    Ok(builder.build())
}

/// The run's one IMDS client, shared by the identity, the credentials, the
/// tags and RHUI's headers: its session token is fetched once (a client
/// per lookup would ask for one each, a round trip on the AWS side's
/// critical path every time).
#[derive(Clone, Debug)]
pub struct Imds {
    endpoint: Option<String>,
    client: Result<imds::Client, ImdsError>,
}

impl Imds {
    /// The client for `endpoint` (`aws.imds_endpoint`), or the SDK's
    /// default (the environment's override, else 169.254.169.254).
    pub fn new(endpoint: Option<&str>) -> Imds {
        Imds {
            endpoint: endpoint.map(str::to_string),
            client: imds_client(endpoint),
        }
    }

    pub fn client(&self) -> Result<&imds::Client, ImdsError> {
        self.client.as_ref().map_err(Clone::clone)
    }

    /// Where it asks, for messages.
    pub fn endpoint(&self) -> String {
        self.endpoint
            .clone()
            .or_else(|| std::env::var("AWS_EC2_METADATA_SERVICE_ENDPOINT").ok())
            .unwrap_or_else(|| "http://169.254.169.254".into())
    }
}

/// Why IMDS could not be asked, or gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImdsError {
    #[error("aws.imds_endpoint `{url}` is not a URL: {why}")]
    BadEndpoint { url: String, why: String },
    /// The request's failure, its causes and the time it took.
    #[error("{0}")]
    NoAnswer(String),
}

/// An IMDS answer: `Ok(None)` for 404 (no such item), `Err` for no answer.
pub async fn imds_get(client: &imds::Client, path: &str) -> Result<Option<String>, ImdsError> {
    let started = std::time::Instant::now();
    match client.get(path).await {
        Ok(value) => Ok(Some(value.as_ref().to_string())),
        Err(imds::client::error::ImdsError::ErrorResponse(r))
            if r.response().status().as_u16() == 404 =>
        {
            Ok(None)
        }
        Err(e) => Err(ImdsError::NoAnswer(describe_imds_error(
            &e,
            started.elapsed(),
        ))),
    }
}

/// An error and every cause under it, de-duplicated: "refused" and "timed
/// out" are in the causes, not in the top error's words.
fn cause_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = cause.source();
    }
    parts.join(": ")
}

fn describe_imds_error(e: &imds::client::error::ImdsError, took: Duration) -> String {
    use imds::client::error::ImdsError as E;
    match e {
        E::FailedToLoadToken(t) if t.is_dispatch_failure() => format!(
            "the instance metadata service did not answer an IMDSv2 token request within {} ms: {}",
            took.as_millis(),
            cause_chain(e)
        ),
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

/// What IMDS says of a role's credentials: its `Code` (`Success`, or why
/// not) and `Expiration` (never the keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleStatus {
    pub code: String,
    pub expiration: Option<String>,
}

/// Why a role's credentials could not be described.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleStatusError {
    #[error(transparent)]
    Imds(#[from] ImdsError),
    #[error("the role {0} is listed but has no credentials")]
    NoCredentials(String),
}

/// The role's credentials as IMDS describes them, or why they could not
/// be read.
pub async fn role_status(client: &imds::Client, name: &str) -> Result<RoleStatus, RoleStatusError> {
    let path = format!("/latest/meta-data/iam/security-credentials/{name}");
    match imds_get(client, &path).await {
        Ok(Some(json)) => {
            let creds: Option<RoleCredentials> = serde_json::from_str(&json).ok();
            Ok(RoleStatus {
                code: creds
                    .as_ref()
                    .and_then(|c| c.code.clone())
                    .unwrap_or_else(|| "unknown".into()),
                expiration: creds.and_then(|c| c.expiration),
            })
        }
        Ok(None) => Err(RoleStatusError::NoCredentials(name.to_string())),
        Err(e) => Err(e.into()),
    }
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
    imds: &Imds,
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
            let client = imds.client().map_err(|e| IdentityError::Failed {
                what: e.to_string(),
                remedy: "Fix aws.imds_endpoint in the ssm-preflight config.".into(),
            })?;
            from_imds(client).await.map_err(|e| match e {
                IdentityError::Failed { what, remedy } => IdentityError::Failed {
                    what: format!("{what} (asked {})", imds.endpoint()),
                    remedy,
                },
                other => other,
            })
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
        (Some(id), Some(region)) if !id.is_empty() && !region.is_empty() => {
            check_ids(&id, &region, REGISTRATION_FILE).map_err(|what| IdentityError::Failed {
                what,
                remedy: "Register the node again: `sudo amazon-ssm-agent -register -code CODE -id ID -region REGION -y`.".into(),
            })?;
            Ok(Identity {
            mode: Mode::Hybrid,
            instance_id: id,
            region,
            account_id: None,
            role: None,
        })
        }
        _ => Err(IdentityError::Failed {
            what: format!("{REGISTRATION_FILE} lacks ManagedInstanceID or Region"),
            remedy: "Register the node again: `sudo amazon-ssm-agent -register -code CODE -id ID -region REGION -y`.".into(),
        }),
    }
}

impl Identity {
    /// An EC2 instance's identity with `role`, for the checks' unit tests.
    #[cfg(test)]
    pub fn ec2_for_tests(role: Role) -> Identity {
        Identity {
            mode: Mode::Ec2,
            instance_id: "i-0abc".into(),
            region: "eu-west-1".into(),
            account_id: Some("123456789012".into()),
            role: Some(role),
        }
    }
}

/// An IAM role name as IAM allows it: 1 to 64 of `A-Za-z0-9+=,.@_-`.
pub fn valid_role_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
}

/// `i-` (EC2) or `mi-` (hybrid) and up to 32 lower-case letters and digits
/// (real IDs are 8 or 17 hexadecimal digits): nothing that could break a
/// request built from it.
pub fn valid_instance_id(id: &str) -> bool {
    let rest = id
        .strip_prefix("i-")
        .or_else(|| id.strip_prefix("mi-"))
        .unwrap_or("");
    (1..=32).contains(&rest.len())
        && rest
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// A region code such as `eu-west-1`: lower-case letters, digits and dashes.
pub fn valid_region(region: &str) -> bool {
    (1..=32).contains(&region.len())
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// What IMDS or the registration file said is checked before any request
/// is built from it: a bad value is an error naming it, never a panic deep
/// in an HTTP library.
fn check_ids(instance_id: &str, region: &str, source: &str) -> Result<(), String> {
    if !valid_instance_id(instance_id) {
        return Err(format!(
            "{source} gives the instance ID {instance_id:?}, which is not one (i- or mi- and lower-case letters and digits)"
        ));
    }
    if !valid_region(region) {
        return Err(format!(
            "{source} gives the region {region:?}, which is not a region code such as \"eu-west-1\""
        ));
    }
    Ok(())
}

/// The instance's signed identity as the `amazon-id` dnf plugin sends it
/// to AWS RHUI with every request: `X-RHUI-ID` and `X-RHUI-SIGNATURE`, the
/// identity document and its signature from IMDSv2, each in URL-safe
/// base64 with its padding (Python's `urlsafe_b64encode`).
pub async fn rhui_headers(imds: &Imds) -> Result<Vec<(&'static str, String)>, String> {
    if imds_disabled_by_env() {
        return Err(
            "AWS_EC2_METADATA_DISABLED is true, so the instance metadata service is not asked"
                .into(),
        );
    }
    let client = imds.client().map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (header, path) in [
        ("X-RHUI-ID", "/latest/dynamic/instance-identity/document"),
        (
            "X-RHUI-SIGNATURE",
            "/latest/dynamic/instance-identity/signature",
        ),
    ] {
        let value = imds_get(client, path)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("the instance metadata service has nothing at {path}"))?;
        // The SDK's standard base64, turned URL-safe: no crate for one call.
        let encoded: String = aws_smithy_types::base64::encode(value.as_bytes())
            .chars()
            .map(|c| match c {
                '+' => '-',
                '/' => '_',
                c => c,
            })
            .collect();
        out.push((header, encoded));
    }
    Ok(out)
}

/// The identity as IMDSv2 tells it: the identity document and the role.
pub async fn from_imds(client: &imds::Client) -> Result<Identity, IdentityError> {
    let failed = |what: String| IdentityError::Failed {
        what,
        remedy: IMDS_REMEDY.into(),
    };
    // The document and the role at once: the role's two calls need nothing
    // the document says.
    let (document, role) = tokio::join!(
        imds_get(client, "/latest/dynamic/instance-identity/document"),
        role(client)
    );
    let document = document
        .map_err(|e| failed(e.to_string()))?
        .ok_or_else(|| failed("the instance metadata service has no identity document".into()))?;
    let doc: IdentityDocument = serde_json::from_str(&document).map_err(|e| {
        failed(format!(
            "the identity document is not JSON the tool understands: {e}"
        ))
    })?;
    check_ids(&doc.instance_id, &doc.region, "the identity document").map_err(|what| {
        IdentityError::Failed {
            what,
            remedy: "What answers at the metadata address is not EC2's instance metadata service (a proxy, a container runtime's emulator?): see what it says with `TOKEN=$(curl -sX PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 60'); curl -sH \"X-aws-ec2-metadata-token: $TOKEN\" http://169.254.169.254/latest/dynamic/instance-identity/document`.".into(),
        }
    })?;
    Ok(Identity {
        mode: Mode::Ec2,
        instance_id: doc.instance_id,
        region: doc.region,
        account_id: doc.account_id,
        role: Some(role),
    })
}

/// The instance profile's role as IMDS lists it.
async fn role(client: &imds::Client) -> Role {
    match imds_get(client, "/latest/meta-data/iam/security-credentials/").await {
        Ok(None) => Role::None,
        // The SDK's instance-profile provider takes the whole listing as the
        // name: anything but one valid name would break its request.
        Ok(Some(listing)) if !listing.trim().is_empty() && !valid_role_name(listing.trim()) => {
            Role::Unknown(format!(
                "IMDS lists the role {:?}, which is not one valid IAM role name",
                listing.trim()
            ))
        }
        Ok(Some(listing)) => match listing.lines().map(str::trim).find(|l| !l.is_empty()) {
            None => Role::None,
            Some(name) => Role::Attached {
                name: name.to_string(),
            },
        },
        Err(e) => Role::Unknown(e.to_string()),
    }
}
