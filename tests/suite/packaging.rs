//! The SSM documents and the IAM policy shipped in packaging/ say what the
//! README says they do.

use std::path::Path;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// Every action a policy file grants.
fn granted(file: &str) -> Vec<String> {
    let policy: serde_json::Value = serde_json::from_str(&read(file)).unwrap();
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
    actions
}

/// The `ssm:`/`ec2:`/`resource-groups:` actions a source file names (as it calls them, in its
/// error messages).
fn named_actions(text: &str) -> Vec<&str> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .filter(|q| {
            q.split_once(':').is_some_and(|(service, verb)| {
                ["ssm", "ec2", "resource-groups"].contains(&service)
                    && !verb.is_empty()
                    && verb.chars().all(|c| c.is_ascii_alphanumeric())
            })
        })
        .collect()
}

#[test]
fn the_iam_policy_grants_exactly_what_the_tool_calls() {
    let actions = granted("packaging/iam/ssm-preflight-policy.json");
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
        "ssm:GetDeployablePatchSnapshotForInstance",
        "ssm:ListCommandInvocations",
        "ssm:ListCommands",
        "ssm:GetCommandInvocation",
        "ssm:DescribeEffectiveInstanceAssociations",
        "ssm:DescribeAssociation",
    ];
    let mut got: Vec<&str> = actions.iter().map(String::as_str).collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    // Every action the node's code names (in its error messages, as it
    // calls it) is in the policy: a new call cannot ship without its
    // permission. The operator's fleet view has its own policy, below.
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/aws")).unwrap() {
        let path = entry.unwrap().path();
        if path.ends_with("fleet.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for quoted in named_actions(&text) {
            assert!(
                got.contains(&quoted),
                "{quoted} is called but not in the policy"
            );
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
fn the_operator_policy_grants_exactly_what_the_fleet_view_calls() {
    let actions = granted("packaging/iam/fleet-operator-policy.json");
    let mut got: Vec<&str> = actions.iter().map(String::as_str).collect();
    got.sort();
    // The fleet view's own calls, and the window lookup it shares with
    // patch.sources (src/aws/patching.rs).
    let source = read("src/fleet/ssm.rs")
        + &read("src/fleet/windows.rs")
        + &read("src/fleet/associations.rs");
    let mut want: Vec<&str> = named_actions(&source);
    want.extend([
        "ssm:GetMaintenanceWindow",
        "ssm:DescribeMaintenanceWindowTasks",
        "ssm:GetMaintenanceWindowTask",
    ]);
    want.sort();
    want.dedup();
    assert_eq!(got, want);
    // Least privilege: nothing that writes.
    for a in &got {
        let verb = a.split_once(':').unwrap().1;
        assert!(
            ["Describe", "List", "Get"]
                .iter()
                .any(|v| verb.starts_with(v)),
            "{a} is not read-only"
        );
    }
    let readme = read("packaging/iam/README.md");
    for action in got {
        assert!(
            readme.contains(action),
            "{action} is explained in packaging/iam/README.md"
        );
    }
}

/// What the AWS CLI's own validator (botocore's model, offline) says of
/// `input` for `service`'s `operation`: `Err` with its words when the CLI
/// would refuse it.
fn aws_cli_accepts(service: &str, operation: &str, input: &Path) -> Result<(), String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("python3")
        .arg(manifest.join("tests/aws_cli/validate_input.py"))
        .args([service, operation])
        .arg(input)
        .output()
        .expect("python3 runs");
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{}{} (botocore is installed by scripts/test: python3 -m pip install botocore)",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// The files under packaging/ as the documented commands send them:
/// the window task as `register-task-with-maintenance-window
/// --cli-input-json`, the gate as `create-document`'s input, each policy
/// as `create-policy`'s; no file needs editing before the CLI takes it.
#[test]
fn the_aws_cli_accepts_the_packaged_files_as_documented() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    aws_cli_accepts(
        "ssm",
        "RegisterTaskWithMaintenanceWindow",
        &manifest.join("packaging/ssm-documents/maintenance-window-task.json"),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gate = dir.path().join("create-document.json");
    let document = serde_json::json!({
        "Name": "SSMPreflight-Gate",
        "DocumentType": "Command",
        "DocumentFormat": "YAML",
        "Content": read("packaging/ssm-documents/SSMPreflight-Gate.yaml"),
    });
    std::fs::write(&gate, document.to_string()).unwrap();
    aws_cli_accepts("ssm", "CreateDocument", &gate).unwrap();
    for (name, file) in [
        (
            "ssm-preflight-node",
            "packaging/iam/ssm-preflight-policy.json",
        ),
        (
            "ssm-preflight-operator",
            "packaging/iam/fleet-operator-policy.json",
        ),
    ] {
        let input = dir.path().join(format!("{name}.json"));
        let policy = serde_json::json!({ "PolicyName": name, "PolicyDocument": read(file) });
        std::fs::write(&input, policy.to_string()).unwrap();
        aws_cli_accepts("iam", "CreatePolicy", &input).unwrap();
    }
    // The validator refuses what the CLI refuses.
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"_comment": "x", "WindowId": "mw-0123456789abcdef0"}"#,
    )
    .unwrap();
    let refused = aws_cli_accepts("ssm", "RegisterTaskWithMaintenanceWindow", &bad).unwrap_err();
    assert!(
        refused.contains("Unknown parameter in input: \"_comment\""),
        "{refused}"
    );
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
