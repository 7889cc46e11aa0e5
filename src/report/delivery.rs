//! Sending a run to SSM (one PutComplianceItems call) and what to do when
//! that fails: errors a retry can fix (no network, throttling, 5xx) keep the
//! report for later with a capped, jittered backoff; errors it cannot
//! (AccessDenied, validation) are recorded with the remedy for `status`.

use super::compliance::{Upload, COMPLIANCE_TYPE, EXECUTION_TYPE, RESOURCE_TYPE};
use super::state::{Delivery, DeliveryState};
use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::types::{
    ComplianceExecutionSummary, ComplianceItemEntry, ComplianceSeverity, ComplianceStatus,
    ComplianceUploadType,
};
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Try again later.
    Retryable(String),
    /// Retrying will not help until someone acts.
    Permanent { error: String, remedy: String },
}

/// The documented PutComplianceItems call for an upload.
pub async fn send(ssm: &aws_sdk_ssm::Client, upload: &Upload) -> Result<(), SendError> {
    let time =
        humantime::parse_rfc3339(&upload.execution_time).map_err(|e| SendError::Permanent {
            error: format!("bad run time {}: {e}", upload.execution_time),
            remedy: BUG.into(),
        })?;
    let summary = ComplianceExecutionSummary::builder()
        .execution_time(aws_sdk_ssm::primitives::DateTime::from(time))
        .execution_id(&upload.execution_id)
        .execution_type(EXECUTION_TYPE)
        .build()
        .map_err(|e| SendError::Permanent {
            error: e.to_string(),
            remedy: BUG.into(),
        })?;
    let items = upload
        .items
        .iter()
        .map(|i| {
            ComplianceItemEntry::builder()
                .id(&i.id)
                .title(&i.title)
                .severity(ComplianceSeverity::from(i.severity))
                .status(ComplianceStatus::from(i.status))
                .set_details(Some(i.details.clone().into_iter().collect()))
                .build()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SendError::Permanent {
            error: e.to_string(),
            remedy: BUG.into(),
        })?;
    ssm.put_compliance_items()
        .resource_id(&upload.resource_id)
        .resource_type(RESOURCE_TYPE)
        .compliance_type(COMPLIANCE_TYPE)
        .execution_summary(summary)
        .set_items(Some(items))
        .upload_type(ComplianceUploadType::Complete)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| classify(&e))
}

const BUG: &str =
    "This is a bug in ssm-preflight: report it with the output of `ssm-preflight status --json`.";

fn classify<E, R>(e: &SdkError<E, R>) -> SendError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let text = crate::aws::sdk::describe_error(e, "ssm:PutComplianceItems");
    let SdkError::ServiceError(se) = e else {
        // Not sent, timed out, or no readable answer: the network or SSM is down.
        return SendError::Retryable(text);
    };
    let code = se.err().code().unwrap_or_default();
    permanent_remedy(code).map_or(SendError::Retryable(text.clone()), |remedy| {
        SendError::Permanent {
            error: text,
            remedy,
        }
    })
}

/// What to do about an error code that retrying cannot fix; `None` for one it can.
pub fn permanent_remedy(code: &str) -> Option<String> {
    let remedy = match code {
        "AccessDeniedException" | "AccessDenied" => {
            "The node's role lacks ssm:PutComplianceItems: add it to the instance role (or the hybrid activation's service role); /usr/share/ssm-preflight/iam/ssm-preflight-policy.json lists every action ssm-preflight uses."
        }
        "UnrecognizedClientException" | "InvalidClientTokenId" | "InvalidSignatureException" | "IncompleteSignature" => {
            "SSM does not accept these credentials: check the instance profile (credentials.role) or register the hybrid node again."
        }
        "InvalidResourceId" | "InvalidResourceType" => {
            "SSM does not know this node as a managed node: check that the agent is registered and online (agent.service, agent.identity) and that it shows in Fleet Manager."
        }
        "ValidationException" | "InvalidItemContentException" | "ItemSizeLimitExceededException" | "TotalSizeLimitExceededException" | "ComplianceTypeCountLimitExceededException" => BUG,
        _ => return None,
    };
    Some(remedy.to_string())
}

/// When to try again: 30 s doubling per attempt up to 30 min, scaled by
/// 0.5–1.0 (`random` in 0..1) so hosts that failed together do not retry together.
pub fn backoff(attempts: u32, random: f64) -> Duration {
    const BASE: Duration = Duration::from_secs(30);
    const CAP: Duration = Duration::from_secs(30 * 60);
    let exp = attempts.saturating_sub(1).min(16);
    let full = BASE.saturating_mul(1 << exp).min(CAP);
    full.mul_f64(0.5 + random.clamp(0.0, 1.0) / 2.0)
}

/// A delay in `0..=max` for spreading a fleet's reports (`random` in 0..1).
pub fn jitter(max: Duration, random: f64) -> Duration {
    max.mul_f64(random.clamp(0.0, 1.0))
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Records an attempt's outcome in the delivery state.
pub fn record(
    delivery: &mut Delivery,
    result: &Result<(), SendError>,
    now: SystemTime,
    random: f64,
) {
    delivery.attempts += 1;
    delivery.last_attempt = Some(rfc3339(now));
    match result {
        Ok(()) => {
            delivery.state = DeliveryState::Delivered;
            delivery.delivered_at = Some(rfc3339(now));
            delivery.next_attempt = None;
            delivery.error = None;
            delivery.remedy = None;
        }
        Err(SendError::Retryable(why)) => {
            delivery.state = DeliveryState::Pending;
            delivery.next_attempt = Some(rfc3339(now + backoff(delivery.attempts, random)));
            delivery.error = Some(why.clone());
            delivery.remedy = None;
        }
        Err(SendError::Permanent { error, remedy }) => {
            delivery.state = DeliveryState::Rejected;
            delivery.next_attempt = None;
            delivery.error = Some(error.clone());
            delivery.remedy = Some(remedy.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1, 1.0), Duration::from_secs(30));
        assert_eq!(backoff(2, 1.0), Duration::from_secs(60));
        assert_eq!(backoff(3, 0.0), Duration::from_secs(60));
        assert_eq!(backoff(20, 1.0), Duration::from_secs(1800));
        assert_eq!(backoff(u32::MAX, 1.0), Duration::from_secs(1800));
        assert_eq!(
            jitter(Duration::from_secs(300), 0.5),
            Duration::from_secs(150)
        );
    }

    #[test]
    fn which_errors_a_retry_fixes() {
        assert!(permanent_remedy("AccessDeniedException")
            .unwrap()
            .contains("ssm:PutComplianceItems"));
        assert!(permanent_remedy("ValidationException").is_some());
        assert!(permanent_remedy("ThrottlingException").is_none());
        assert!(permanent_remedy("InternalServerError").is_none());
    }

    #[test]
    fn recording_attempts() {
        let mut d = Delivery::not_sent("r", "2026-11-26T10:00:00Z");
        let now = humantime::parse_rfc3339("2026-11-26T10:00:00Z").unwrap();
        record(&mut d, &Err(SendError::Retryable("down".into())), now, 1.0);
        assert_eq!(d.state, DeliveryState::Pending);
        assert_eq!(d.next_attempt.as_deref(), Some("2026-11-26T10:00:30Z"));
        record(&mut d, &Ok(()), now, 1.0);
        assert_eq!((d.state.clone(), d.attempts), (DeliveryState::Delivered, 2));
        assert!(d.error.is_none());
    }
}
