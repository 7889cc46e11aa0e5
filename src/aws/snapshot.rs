//! The patch run's own first call, made ahead of it: `AWS-RunPatchBaseline`
//! starts by asking SSM for a deployable patch snapshot of this node
//! (`ssm:GetDeployablePatchSnapshotForInstance`, with the node's
//! credentials and a fresh snapshot ID), then downloads the snapshot from
//! the presigned S3 URL SSM answers (bucket `patch-baseline-snapshot-<region>`).
//! A refusal of either fails the patch run while every other check passes.
//!
//! The presigned URL is a credential: it is kept in [`Presigned`], which
//! neither prints nor serialises it, and errors about it never carry it.

use aws_sdk_ssm::error::ProvideErrorMetadata;
use std::time::Duration;

/// A presigned URL: usable, never shown.
#[derive(Clone)]
pub struct Presigned(String);

impl std::fmt::Debug for Presigned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Presigned(***)")
    }
}

impl Presigned {
    /// Only its host, for messages.
    pub fn host(&self) -> String {
        reqwest::Url::parse(&self.0)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| "the presigned URL's host".into())
    }
}

/// What SSM answered.
#[derive(Debug, Clone)]
pub struct Deployable {
    pub snapshot_id: String,
    /// The product SSM resolved this node to (`AmazonLinux2023`, `Ubuntu22.04`, …).
    pub product: Option<String>,
    pub url: Option<Presigned>,
}

/// Why SSM gave no snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("ssm:GetDeployablePatchSnapshotForInstance was refused (AccessDeniedException: {0})")]
    Denied(String),
    /// SSM does not patch this operating system (version): its words.
    #[error("SSM answered UnsupportedOperatingSystem: {0}")]
    Unsupported(String),
    #[error("{0}")]
    Failed(String),
}

pub const ACTION: &str = "ssm:GetDeployablePatchSnapshotForInstance";

/// Asks as the payload does: this node, a fresh UUID v4 as the snapshot ID.
pub async fn deployable(
    ssm: &aws_sdk_ssm::Client,
    instance_id: &str,
) -> Result<Deployable, SnapshotError> {
    let snapshot_id = uuid::Uuid::new_v4().to_string();
    let out = ssm
        .get_deployable_patch_snapshot_for_instance()
        .instance_id(instance_id)
        .snapshot_id(&snapshot_id)
        .send()
        .await
        .map_err(|e| {
            let code = e.code().unwrap_or_default().to_string();
            let message = e.message().unwrap_or("no message").to_string();
            match code.as_str() {
                "UnsupportedOperatingSystem" => SnapshotError::Unsupported(message),
                _ => match super::patching::classify(&e, ACTION) {
                    super::patching::CallError::Denied { message, .. } => {
                        SnapshotError::Denied(message)
                    }
                    super::patching::CallError::Failed(why) => SnapshotError::Failed(why),
                },
            }
        })?;
    Ok(Deployable {
        snapshot_id,
        product: out.product().map(str::to_string),
        url: out
            .snapshot_download_url()
            .map(|u| Presigned(u.to_string())),
    })
}

/// What the snapshot's download gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Download {
    /// 2xx: the body, up to `MAX_SNAPSHOT` bytes, and whether it went on.
    Got { body: Vec<u8>, truncated: bool },
    /// Another HTTP status.
    Status(u16),
    /// No answer: why, without the URL.
    NoAnswer(String),
}

/// A snapshot is a baseline's rules and lists: kilobytes. Past this the
/// rest is not read.
pub const MAX_SNAPSHOT: usize = 5 << 20;

/// One bounded GET of the presigned URL.
pub async fn download(client: &reqwest::Client, url: &Presigned, timeout: Duration) -> Download {
    let fetch = async {
        let mut response = client
            .get(&url.0)
            .send()
            .await
            .map_err(|e| crate::network::repos::describe_reqwest(&e.without_url()))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Ok(Download::Status(status));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| crate::network::repos::describe_reqwest(&e.without_url()))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_SNAPSHOT {
                body.truncate(MAX_SNAPSHOT);
                return Ok(Download::Got {
                    body,
                    truncated: true,
                });
            }
        }
        Ok(Download::Got {
            body,
            truncated: false,
        })
    };
    match tokio::time::timeout(timeout, fetch).await {
        Ok(Ok(d)) => d,
        Ok(Err(why)) => Download::NoAnswer(why),
        Err(_) => Download::NoAnswer(format!(
            "no answer within {}",
            humantime::format_duration(timeout)
        )),
    }
}

/// The baseline fields a snapshot carries, when it is JSON with them (at
/// its top or one object down): name, operating system, how many approval
/// rules, approved and rejected patches. None: not a shape this reads.
pub fn baseline_fields(body: &[u8]) -> Option<Vec<(&'static str, String)>> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let object = v.as_object()?;
    let candidates = std::iter::once(&v).chain(object.values().filter(|x| x.is_object()));
    for o in candidates {
        let get = |names: &[&str]| {
            o.as_object()?
                .iter()
                .find(|(k, _)| names.iter().any(|n| k.eq_ignore_ascii_case(n)))
                .map(|(_, v)| v)
        };
        let mut out = Vec::new();
        if let Some(n) = get(&["name", "baselineName"]).and_then(|v| v.as_str()) {
            out.push(("baseline", n.to_string()));
        }
        if let Some(os) = get(&["operatingSystem"]).and_then(|v| v.as_str()) {
            out.push(("operating_system", os.to_string()));
        }
        if let Some(rules) = get(&["approvalRules"]) {
            let n = rules
                .get("patchRules")
                .or_else(|| rules.get("PatchRules"))
                .and_then(|r| r.as_array())
                .map_or(0, Vec::len);
            out.push(("approval_rules", n.to_string()));
        }
        for (key, names) in [
            ("approved_patches", ["approvedPatches"]),
            ("rejected_patches", ["rejectedPatches"]),
        ] {
            if let Some(list) = get(&names).and_then(|v| v.as_array()) {
                out.push((key, list.len().to_string()));
            }
        }
        if !out.is_empty() {
            return Some(out);
        }
    }
    None
}

/// A stand-in presigned URL for verdict tests.
#[cfg(test)]
pub fn tests_presigned() -> Presigned {
    Presigned("https://s3.eu-west-1.amazonaws.com/patch-baseline-snapshot-eu-west-1/x?X-Amz-Signature=secret".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_never_prints() {
        let p = Presigned("https://s3.example/b/k?X-Amz-Signature=secret".into());
        assert_eq!(format!("{p:?}"), "Presigned(***)");
        assert_eq!(p.host(), "s3.example");
    }

    #[test]
    fn baseline_fields_are_read_at_the_top_or_one_level_down() {
        let nested = br#"{"patchBaseline": {"name": "prod-debian", "operatingSystem": "DEBIAN", "approvalRules": {"patchRules": [{}, {}]}, "approvedPatches": ["openssl"], "rejectedPatches": []}}"#;
        assert_eq!(
            baseline_fields(nested).unwrap(),
            [
                ("baseline", "prod-debian".to_string()),
                ("operating_system", "DEBIAN".into()),
                ("approval_rules", "2".into()),
                ("approved_patches", "1".into()),
                ("rejected_patches", "0".into())
            ]
        );
        assert_eq!(
            baseline_fields(br#"{"Name": "b"}"#).unwrap(),
            [("baseline", "b".to_string())]
        );
        assert_eq!(baseline_fields(b"not json"), None);
        assert_eq!(baseline_fields(br#"{"other": 1}"#), None);
    }
}
