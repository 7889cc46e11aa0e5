//! SSM custom compliance on the wire: one PutComplianceItems call, and
//! which of its errors a retry can fix.

use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::types::{
    ComplianceExecutionSummary, ComplianceItemEntry, ComplianceSeverity, ComplianceStatus,
    ComplianceUploadType,
};
use std::collections::BTreeMap;

/// The detail that tells the fleet view a check blocks its node's gate.
pub const GATE_DETAIL: &str = "Gate";
/// Its value on a check the gate blocks on; every other item says
/// `GATE_PASSES` (a report without the detail predates it).
pub const GATE_BLOCKS: &str = "blocks";
pub const GATE_PASSES: &str = "no";
pub const COMPLIANCE_TYPE: &str = "Custom:PatchPreflight";
pub const RESOURCE_TYPE: &str = "ManagedInstance";
/// `ExecutionSummary.ExecutionType`: who produced the items.
pub const EXECUTION_TYPE: &str = "ssm-preflight";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub id: String,
    pub title: String,
    /// CRITICAL, HIGH, MEDIUM, LOW, INFORMATIONAL.
    pub severity: &'static str,
    /// COMPLIANT or NON_COMPLIANT.
    pub status: &'static str,
    pub details: BTreeMap<String, String>,
}

/// Everything one PutComplianceItems call carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub resource_id: String,
    /// RFC 3339, the run's start.
    pub execution_time: String,
    pub execution_id: String,
    pub items: Vec<Item>,
}

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
    let failure = crate::aws::sdk::classify(e, "ssm:PutComplianceItems");
    // Not sent, timed out, throttled, or no readable answer: try again later.
    let remedy = failure.code.as_deref().and_then(permanent_remedy);
    match remedy {
        Some(remedy) => SendError::Permanent {
            error: failure.text,
            remedy,
        },
        None => SendError::Retryable(failure.text),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_errors_a_retry_fixes() {
        assert!(permanent_remedy("AccessDeniedException")
            .unwrap()
            .contains("ssm:PutComplianceItems"));
        assert!(permanent_remedy("ValidationException").is_some());
        assert!(permanent_remedy("ThrottlingException").is_none());
        assert!(permanent_remedy("InternalServerError").is_none());
    }
}
