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
    let mut actions: Vec<String> = Vec::new();
    for statement in policy["Statement"].as_array().unwrap() {
        match &statement["Action"] {
            serde_json::Value::String(a) => actions.push(a.clone()),
            serde_json::Value::Array(list) => {
                actions.extend(list.iter().map(|a| a.as_str().unwrap().to_string()))
            }
            other => panic!("an Action that is neither a string nor a list: {other}"),
        }
    }
    let mut want = vec![
        "ssm:PutComplianceItems",
        "ssm:DescribeMaintenanceWindowSchedule",
        "ssm:ListTagsForResource",
        "ec2:DescribeTags",
        "ssm:DescribeInstanceInformation",
        "ssm:DescribePatchGroups",
        "ssm:GetDefaultPatchBaseline",
        "ssm:GetPatchBaseline",
        "ssm:DescribeInstancePatchStates",
        "ssm:DescribeInstancePatches",
        "ssm:GetMaintenanceWindow",
        "ssm:DescribeMaintenanceWindowTasks",
        "ssm:GetMaintenanceWindowTask",
        "ssm:GetDocument",
    ];
    let mut got: Vec<&str> = actions.iter().map(String::as_str).collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    // Every action the code names (in its error messages, as it calls it)
    // is in the policy: a new call cannot ship without its permission.
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/aws")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for quoted in text.split('"').skip(1).step_by(2) {
            let named = quoted.starts_with("ssm:") || quoted.starts_with("ec2:");
            if named && quoted[4..].chars().all(|c| c.is_ascii_alphanumeric()) && quoted.len() > 4 {
                assert!(
                    got.contains(&quoted),
                    "{quoted} is called but not in the policy"
                );
            }
        }
    }
    let readme = read("packaging/iam/README.md");
    for action in got {
        assert!(
            readme.contains(action.split(':').nth(1).unwrap()),
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
