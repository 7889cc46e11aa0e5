//! This node's maintenance windows as SSM schedules them
//! (`ssm:DescribeMaintenanceWindowSchedule`, by instance ID and by Patch
//! Group tag).

use crate::config::schedule::window::{parse_execution_time, Window};

/// `mw-` and 17 hexadecimal digits, as SSM names a window: checked before
/// an ID from the command line or the state file is sent anywhere.
pub fn valid_window_id(id: &str) -> bool {
    id.strip_prefix("mw-")
        .is_some_and(|h| h.len() == 17 && h.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Why SSM's schedule could not be read, for `windows` and `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleUnavailable {
    pub error: String,
    pub remedy: Option<String>,
}

/// This node's windows from SSM, by instance ID and by Patch Group. Each
/// window ID is sent to `found` as soon as a lookup names it (once), so a
/// caller can read the window while the other lookups are still out.
pub async fn from_ssm<F>(
    ssm: &aws_sdk_ssm::Client,
    instance_id: &str,
    tag_sources: Vec<F>,
    found: Option<tokio::sync::mpsc::UnboundedSender<String>>,
) -> Result<Vec<Window>, ScheduleUnavailable>
where
    F: std::future::Future<Output = Vec<(String, String)>>,
{
    use aws_sdk_ssm::types::{MaintenanceWindowResourceType, Target};
    use futures_util::stream::{FuturesUnordered, StreamExt};
    let lookup = |key: String, value: String| {
        ssm.describe_maintenance_window_schedule()
            .targets(Target::builder().key(key).values(value).build())
            .resource_type(MaintenanceWindowResourceType::Instance)
            .send()
    };
    // Every lookup at once: by instance ID from the start, by each Patch
    // Group tag the node carries as soon as a source shows it (IMDS's
    // before the API's), each key and value asked once.
    let mut sources: FuturesUnordered<F> = tag_sources.into_iter().collect();
    let mut lookups = FuturesUnordered::new();
    let mut asked = std::collections::HashSet::new();
    lookups.push(lookup("InstanceIds".into(), instance_id.to_string()));
    let mut answers = Vec::new();
    let mut sent = std::collections::HashSet::new();
    loop {
        tokio::select! {
            Some(pairs) = sources.next() => {
                for (key, value) in pairs {
                    if asked.insert((key.clone(), value.clone())) {
                        lookups.push(lookup(format!("tag:{key}"), value));
                    }
                }
            }
            Some(answer) = lookups.next() => {
                if let (Ok(a), Some(tx)) = (&answer, &found) {
                    for id in a.scheduled_window_executions().iter().filter_map(|w| w.window_id()) {
                        if sent.insert(id.to_string()) {
                            // The receiver gone: the caller no longer wants them.
                            let _ = tx.send(id.to_string());
                        }
                    }
                }
                answers.push(answer)
            }
            else => break,
        }
    }
    let mut out = Vec::new();
    for answer in answers {
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                let error =
                    crate::aws::sdk::describe_error(&e, "ssm:DescribeMaintenanceWindowSchedule");
                let denied = error.contains("AccessDenied");
                return Err(ScheduleUnavailable {
                    remedy: denied.then(|| "Add ssm:DescribeMaintenanceWindowSchedule to the node's role (optional in /usr/share/ssm-preflight/iam/ssm-preflight-policy.json), or list the windows as [[window]] in the config.".to_string()),
                    error,
                });
            }
        };
        for w in answer.scheduled_window_executions() {
            let Some(start) = w.execution_time().and_then(parse_execution_time) else {
                continue;
            };
            out.push(Window {
                start: start.to_string(),
                name: w.name().unwrap_or("unnamed window").to_string(),
                source: "ssm".into(),
                window_id: w.window_id().map(str::to_string),
                duration_secs: None,
            });
        }
    }
    Ok(out)
}

/// A window's length in hours (`ssm:GetMaintenanceWindow`), or `None` when
/// SSM does not say or may not be asked.
pub async fn duration_hours(ssm: &aws_sdk_ssm::Client, window_id: &str) -> Option<u64> {
    let out = ssm
        .get_maintenance_window()
        .window_id(window_id)
        .send()
        .await
        .ok()?;
    out.duration().and_then(|h| u64::try_from(h).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_ids_are_checked_before_any_call() {
        assert!(valid_window_id("mw-0c50858d01abcdef0"));
        assert!(!valid_window_id("mw-123"));
        assert!(!valid_window_id("mw-0c50858d01abcdefg"));
        assert!(!valid_window_id("i-0123456789abcdef0"));
    }
}
