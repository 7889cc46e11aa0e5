//! AWS SDK clients built by hand: an explicit region and an explicit
//! credential provider, so no default chain ever falls back to IMDS on its
//! own (in `local` mode nothing here is built at all).

use super::identity::Identity;
use crate::config::Settings;
use crate::host::mode::Mode;
use crate::host::Root;
use aws_config::imds::credentials::ImdsCredentialsProvider;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
use aws_sdk_ssm::config::retry::RetryConfig;
use aws_sdk_ssm::error::ProvideErrorMetadata;

/// Why the node's credentials cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("no credentials: the agent's shared credentials file {0} does not exist")]
    NoSharedFile(String),
    #[error("the instance metadata client cannot be built: {0}")]
    Imds(String),
    #[error("local mode uses no credentials")]
    Local,
    #[error("the instance profile cannot be used: {0}")]
    Role(String),
}

/// Credentials and where they come from, for messages.
pub struct Credentials {
    pub provider: SharedCredentialsProvider,
    pub source: String,
}

/// Whether the environment holds keys, which win over every other source.
pub fn keys_in_environment() -> bool {
    std::env::var_os("AWS_ACCESS_KEY_ID").is_some()
}

/// The credentials the agent itself would use on this node.
pub fn credentials(
    root: &Root,
    settings: &Settings,
    identity: &Identity,
    imds: &super::identity::Imds,
) -> Result<Credentials, CredentialsError> {
    if keys_in_environment() {
        return Ok(Credentials {
            provider: SharedCredentialsProvider::new(
                aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
            ),
            source: "the environment (AWS_ACCESS_KEY_ID)".into(),
        });
    }
    match identity.mode {
        Mode::Ec2 => {
            // Only a role IMDS names cleanly: the SDK's provider builds a
            // request from the listing as it is.
            if let Some(super::identity::Role::Unknown(why)) = &identity.role {
                return Err(CredentialsError::Role(why.clone()));
            }
            // The role the identity lookup listed: the provider need not
            // list it again (one IMDS round trip fewer before every call).
            let name = match &identity.role {
                Some(super::identity::Role::Attached { name }) => Some(name.as_str()),
                _ => None,
            };
            instance_profile(imds, name)
        }
        Mode::Hybrid => {
            let path = root.path(&settings.aws.credentials_file);
            if !path.is_file() {
                return Err(CredentialsError::NoSharedFile(
                    settings.aws.credentials_file.clone(),
                ));
            }
            let provider_config =
                ProviderConfig::default().with_http_client(super::sdk_http_client());
            let files = EnvConfigFiles::builder()
                .with_file(EnvConfigFileKind::Credentials, &path)
                .build();
            let provider = ProfileFileCredentialsProvider::builder()
                .configure(&provider_config)
                .profile_files(files)
                .profile_name(&settings.aws.profile)
                .build();
            Ok(Credentials {
                provider: SharedCredentialsProvider::new(provider),
                source: format!(
                    "{} [{}]",
                    settings.aws.credentials_file, settings.aws.profile
                ),
            })
        }
        Mode::Local => Err(CredentialsError::Local),
    }
}

/// Where the instance profile's credentials come from, for messages.
pub const INSTANCE_PROFILE: &str = "the instance profile";

/// The instance profile's credentials from IMDS: for the role `name`, or
/// for the role IMDS lists when no name is given.
pub fn instance_profile(
    imds: &super::identity::Imds,
    name: Option<&str>,
) -> Result<Credentials, CredentialsError> {
    // The provider asks IMDS through `imds`'s own client; this one is never
    // used (and, plain, never waits for the trust store).
    let provider_config =
        ProviderConfig::default().with_http_client(super::sdk_plain_http_client());
    let imds = imds
        .client()
        .map_err(|e| CredentialsError::Imds(e.to_string()))?
        .clone();
    let mut provider = ImdsCredentialsProvider::builder()
        .configure(&provider_config)
        .imds_client(imds);
    if let Some(name) = name {
        provider = provider.profile(name);
    }
    Ok(Credentials {
        provider: SharedCredentialsProvider::new(provider.build()),
        source: INSTANCE_PROFILE.into(),
    })
}

/// The URL to reach a service at instead of its regional name: the config
/// (`endpoints.urls.<service>`), then `AWS_ENDPOINT_URL_<SERVICE>`, then `AWS_ENDPOINT_URL`.
pub fn endpoint_override(settings: &Settings, service: &str) -> Option<String> {
    if let Some(url) = settings.endpoints.urls.get(service) {
        return Some(url.clone());
    }
    let var = format!(
        "AWS_ENDPOINT_URL_{}",
        service.to_ascii_uppercase().replace('-', "_")
    );
    std::env::var(var)
        .ok()
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
        .filter(|v| !v.is_empty())
}

/// The bounds on every SDK call: an SSM endpoint that accepts the connection
/// and never answers, or drips a byte a second, ends the call here.
pub fn timeouts(settings: &Settings) -> aws_sdk_ssm::config::timeout::TimeoutConfig {
    aws_sdk_ssm::config::timeout::TimeoutConfig::builder()
        .connect_timeout(settings.aws.attempt_timeout)
        .read_timeout(settings.aws.attempt_timeout)
        .operation_attempt_timeout(settings.aws.attempt_timeout)
        .operation_timeout(settings.aws.operation_timeout)
        .build()
}

/// An SSM client: explicit region and credentials, bounded calls, our HTTPS
/// client, and the standard retry mode (jittered exponential backoff, which
/// spreads a fleet's retries). Not the adaptive mode: its client-side rate
/// limiter, fed by one call per run, waited past the call's whole timeout
/// after a single ThrottlingException.
pub fn ssm_client(
    settings: &Settings,
    region: &str,
    credentials: &Credentials,
) -> aws_sdk_ssm::Client {
    let mut config = aws_sdk_ssm::Config::builder()
        .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
        .region(aws_sdk_ssm::config::Region::new(region.to_string()))
        .credentials_provider(credentials.provider.clone())
        .http_client(super::sdk_http_client())
        .sleep_impl(aws_smithy_async::rt::sleep::TokioSleep::new())
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .timeout_config(timeouts(settings));
    if let Some(url) = endpoint_override(settings, "ssm") {
        config = config.endpoint_url(url);
    }
    aws_sdk_ssm::Client::from_conf(config.build())
}

/// What an SDK call met, sorted once for every caller: the checks (a
/// missing optional permission is a skip), the compliance delivery (what
/// retrying can fix) and the fleet view (what the operator must do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// AccessDenied: the caller's policy lacks the action.
    Denied,
    /// The credentials are not accepted: expired, unknown, badly signed.
    Expired,
    /// Throttled past the SDK's retries.
    Throttled,
    /// No answer: not sent, or timed out.
    Unreachable,
    /// Any other answer or failure.
    Other,
}

/// One failed SDK call: its kind, the service's code and message when it
/// answered, and the whole in one sentence (`describe_error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub code: Option<String>,
    pub message: String,
    pub text: String,
}

/// Sorts an SDK error into its `Failure`.
pub fn classify<E, R>(e: &aws_sdk_ssm::error::SdkError<E, R>, action: &str) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_ssm::error::SdkError;
    let text = describe_error(e, action);
    let (kind, code, message) = match e {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or_default().to_string();
            let message = se.err().message().unwrap_or("no message").to_string();
            let kind = match code.as_str() {
                "AccessDeniedException" | "AccessDenied" | "ForbiddenException" => {
                    FailureKind::Denied
                }
                "ExpiredTokenException"
                | "ExpiredToken"
                | "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "IncompleteSignature"
                | "InvalidClientTokenId" => FailureKind::Expired,
                "ThrottlingException" | "Throttling" | "TooManyRequestsException" => {
                    FailureKind::Throttled
                }
                _ => FailureKind::Other,
            };
            (kind, Some(code), message)
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            (FailureKind::Unreachable, None, String::new())
        }
        _ => (FailureKind::Other, None, String::new()),
    };
    Failure {
        kind,
        code,
        message,
        text,
    }
}

/// A date in an AWS answer that no check can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} is {value}, outside the years 1970 to 9999: the answer is not a date this tool can use")]
pub struct BadDate {
    pub field: &'static str,
    pub value: String,
}

/// The one conversion of a date from AWS: outside the years 1970 to 9999
/// (a corrupt or hostile answer) it is an error naming the field, never a
/// value that panics later when it is formatted.
pub fn aws_date(
    field: &'static str,
    t: &aws_smithy_types::DateTime,
) -> Result<std::time::SystemTime, BadDate> {
    const LAST_SECOND_OF_9999: i64 = 253_402_300_799;
    let bad = || BadDate {
        field,
        value: format!("{} s after 1970", t.secs()),
    };
    if !(0..=LAST_SECOND_OF_9999).contains(&t.secs()) {
        return Err(bad());
    }
    std::time::SystemTime::try_from(*t).map_err(|_| bad())
}

/// An SDK error in one sentence: the service's error code and message, or
/// why the call never got an answer.
pub fn describe_error<E, R>(e: &aws_sdk_ssm::error::SdkError<E, R>, action: &str) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_ssm::error::SdkError;
    match e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            format!(
                "{action} answered {}: {}",
                err.code().unwrap_or("an error"),
                err.message().unwrap_or("no message")
            )
        }
        SdkError::TimeoutError(_) => format!("{action} timed out"),
        SdkError::DispatchFailure(d) => match d.as_connector_error() {
            Some(c) => format!("{action} could not be sent: {}", source_chain(c)),
            None => format!("{action} could not be sent"),
        },
        other => format!("{action} failed: {}", source_chain(other)),
    }
}

/// An error and its sources, one sentence, repeats left out.
pub fn source_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut next = e.source();
    while let Some(s) = next {
        parts.push(s.to_string());
        next = s.source();
    }
    parts.dedup();
    parts.join(": ")
}
