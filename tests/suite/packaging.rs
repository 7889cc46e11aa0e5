//! The SSM documents and the IAM policy shipped in packaging/ say what the
//! README says they do.

use std::path::Path;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn the_iam_policy_grants_exactly_what_the_tool_calls() {
    let policy: serde_json::Value =
        serde_json::from_str(&read("packaging/iam/ssm-preflight-policy.json")).unwrap();
    let actions: Vec<&str> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "ssm:PutComplianceItems",
            "ssm:DescribeMaintenanceWindowSchedule",
            "ssm:ListTagsForResource",
            "ec2:DescribeTags"
        ]
    );
    let readme = read("packaging/iam/README.md");
    for action in actions {
        assert!(
            readme.contains(&format!("`{action}`")),
            "{action} is explained"
        );
    }
}

#[test]
fn the_gate_document_and_the_window_task_fit_together() {
    let doc = read("packaging/ssm-documents/SSMPreflight-Gate.yaml");
    assert!(doc.contains("schemaVersion: \"2.2\""));
    assert!(doc.contains("exec ssm-preflight gate --max-age '{{ MaxAge }}'"));
    let task: serde_json::Value = serde_json::from_str(&read(
        "packaging/ssm-documents/maintenance-window-task.json",
    ))
    .unwrap();
    assert_eq!(task["TaskArn"], "AWS-RunPatchBaselineWithHooks");
    assert_eq!(
        task["TaskInvocationParameters"]["RunCommand"]["Parameters"]["PreInstallHookDocName"][0],
        "SSMPreflight-Gate"
    );
}
