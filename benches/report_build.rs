//! Building and signing one compliance report: the `Upload` from a run
//! (limits applied), its awsJson1_1 body, and the SigV4 signature of that
//! request — the work `check --report` does before the one API call.
//! Run with `cargo bench --bench report_build`; budget ≤ 5 ms.

use ssm_preflight::checks::{CheckResult, Group, Severity, Status};
use ssm_preflight::host::mode::Mode;
use ssm_preflight::run::compliance;
use ssm_preflight::run::report::{HostSummary, Report};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

fn report() -> Report {
    // A run like a real one: 20 checks, a few with long summaries.
    let checks = (0..20)
        .map(|i| CheckResult {
            id: format!("check.{i}"),
            group: Group::Host,
            title: "A check".into(),
            status: if i % 5 == 0 {
                Status::Fail
            } else {
                Status::Pass
            },
            severity: Severity::High,
            summary: "x".repeat(if i % 7 == 0 { 6000 } else { 120 }),
            remedy: Some("Run `sudo something --to fix it`.".into()),
            details: BTreeMap::new(),
            duration_ms: 1,
        })
        .collect();
    let host = HostSummary {
        mode: Mode::Ec2,
        instance_id: Some("i-0123456789abcdef0".into()),
        region: Some("eu-west-1".into()),
        patch_group: Some("production-linux".into()),
        os: None,
    };
    Report::new(host, SystemTime::now(), Duration::from_millis(12), checks)
}

/// The request body as the SDK would write it (same fields, same shape).
fn body(u: &compliance::Upload) -> Vec<u8> {
    let items: Vec<serde_json::Value> = u
        .items
        .iter()
        .map(|i| serde_json::json!({"Id": i.id, "Title": i.title, "Severity": i.severity, "Status": i.status, "Details": i.details}))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "ResourceId": u.resource_id,
        "ResourceType": compliance::RESOURCE_TYPE,
        "ComplianceType": compliance::COMPLIANCE_TYPE,
        "ExecutionSummary": {"ExecutionTime": 1.8e9, "ExecutionId": u.execution_id, "ExecutionType": compliance::EXECUTION_TYPE},
        "Items": items,
        "UploadType": "COMPLETE",
    }))
    .unwrap()
}

fn sign(body: &[u8]) -> String {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    let creds = aws_credential_types::Credentials::new(
        "AKIDEXAMPLE",
        "secret",
        Some("token".into()),
        None,
        "bench",
    );
    let identity = creds.into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("eu-west-1")
        .name("ssm")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let headers = [
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", "AmazonSSM.PutComplianceItems"),
    ];
    let request = SignableRequest::new(
        "POST",
        "https://ssm.eu-west-1.amazonaws.com/",
        headers.into_iter(),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (_, signature) = sign(request, &params).unwrap().into_parts();
    signature
}

fn main() {
    if std::env::args().any(|a| a == "--test") {
        return;
    }
    let run = report();
    const N: usize = 2000;
    let mut times = Vec::with_capacity(N);
    for _ in 0..N {
        let started = Instant::now();
        let upload = compliance::upload(
            &run,
            "i-0123456789abcdef0",
            "5f0c8a52-7d0e-4d1e-9a57-5b7f1c3f2a10",
        );
        let b = body(&upload);
        let s = sign(&b);
        std::hint::black_box((b, s));
        times.push(started.elapsed());
    }
    times.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "build + serialize + sign one report (20 checks, 3 truncated): runs={N} median={:.1} µs p99={:.1} µs max={:.1} µs (budget 5000 µs)",
        us(times[N / 2]),
        us(times[N * 99 / 100]),
        us(times[N - 1])
    );
}
