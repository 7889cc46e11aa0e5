//! This node's maintenance windows as SSM schedules them
//! (`ssm:DescribeMaintenanceWindowSchedule`, by instance ID and by Patch
//! Group tag).

use crate::config::schedule::window::{parse_execution_time, Window};

/// Why SSM's schedule could not be read, for `windows` and `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleUnavailable {
    pub error: String,
    pub remedy: Option<String>,
}

/// This node's windows from SSM, by instance ID and by Patch Group.
pub async fn from_ssm(
    ssm: &aws_sdk_ssm::Client,
    instance_id: &str,
    patch_group: Option<&str>,
) -> Result<Vec<Window>, ScheduleUnavailable> {
    use aws_sdk_ssm::types::{MaintenanceWindowResourceType, Target};
    let mut targets = vec![("InstanceIds".to_string(), instance_id.to_string())];
    if let Some(group) = patch_group {
        targets.push(("tag:Patch Group".into(), group.to_string()));
        targets.push(("tag:PatchGroup".into(), group.to_string()));
    }
    // The lookups at once: the run waits for the slowest, not for all in turn.
    let answers = futures_util::future::join_all(targets.iter().map(|(key, value)| {
        ssm.describe_maintenance_window_schedule()
            .targets(Target::builder().key(key).values(value).build())
            .resource_type(MaintenanceWindowResourceType::Instance)
            .send()
    }))
    .await;
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
