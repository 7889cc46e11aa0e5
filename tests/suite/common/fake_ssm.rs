//! A loopback fake of the SSM JSON API (awsJson1_1, `X-Amz-Target`): it
//! checks each request's SigV4 signature against the test credentials,
//! enforces PutComplianceItems' documented constraints, answers with AWS's
//! error shapes, stores items and answers ListComplianceItems — and, for
//! the scheduler, DescribeMaintenanceWindowSchedule.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub const ACCESS_KEY: &str = "AKIDTESTFAKESSM";
pub const SECRET_KEY: &str = "fake-ssm-secret";

/// One accepted PutComplianceItems call.
#[derive(Debug, Clone)]
pub struct Put {
    pub resource_id: String,
    pub execution_id: String,
    pub execution_time: f64,
    pub items: Vec<Value>,
}

#[derive(Default)]
pub struct FakeSsm {
    /// Answers to give before serving normally: (HTTP status, error type).
    pub failures: VecDeque<(u16, &'static str)>,
    /// Refuse every call with AccessDeniedException.
    pub deny: bool,
    pub puts: Vec<Put>,
    /// Every request's target, in order (including refused ones).
    pub calls: Vec<String>,
    /// Signatures that did not verify.
    pub bad_signatures: usize,
    /// DescribeMaintenanceWindowSchedule answers, by target: key
    /// ("InstanceIds" or "tag:…"), value, then the window execution.
    pub schedules: Vec<(String, String, Value)>,
}

pub type Shared = Arc<Mutex<FakeSsm>>;

pub async fn start() -> (Shared, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shared: Shared = Arc::new(Mutex::new(FakeSsm::default()));
    let state = shared.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(req, &state).await) }
                    },
                );
                let io = hyper_util::rt::TokioIo::new(tcp);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    (shared, addr)
}

fn error(status: u16, kind: &str, message: &str) -> hyper::Response<Full<Bytes>> {
    let body = json!({ "__type": kind, "message": message }).to_string();
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-errortype", kind)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn ok(body: Value) -> hyper::Response<Full<Bytes>> {
    hyper::Response::builder()
        .status(200)
        .header("content-type", "application/x-amz-json-1.1")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

async fn handle(
    req: hyper::Request<hyper::body::Incoming>,
    state: &Shared,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    state.lock().unwrap().calls.push(target.clone());
    if let Err(why) = verify_sigv4(&parts, &body) {
        state.lock().unwrap().bad_signatures += 1;
        return error(400, "InvalidSignatureException", &why);
    }
    {
        let mut s = state.lock().unwrap();
        if s.deny {
            return error(400, "AccessDeniedException", "User: arn:aws:sts::123456789012:assumed-role/SSMCore/i-0test is not authorized to perform: ssm:PutComplianceItems");
        }
        if let Some((status, kind)) = s.failures.pop_front() {
            return error(status, kind, "the fake was told to fail");
        }
    }
    let input: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return error(400, "SerializationException", "body is not JSON"),
    };
    match target.as_str() {
        "AmazonSSM.PutComplianceItems" => match validate_put(&input) {
            Ok(put) => {
                state.lock().unwrap().puts.push(put);
                ok(json!({}))
            }
            Err(why) => error(400, "ValidationException", &why),
        },
        "AmazonSSM.ListComplianceItems" => {
            let s = state.lock().unwrap();
            let wanted: Vec<String> = input["ResourceIds"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            // COMPLETE uploads replace: the latest put per resource is what is stored.
            let mut items = Vec::new();
            for put in s.puts.iter().rev() {
                if !wanted.is_empty() && !wanted.contains(&put.resource_id) {
                    continue;
                }
                if items
                    .iter()
                    .any(|i: &Value| i["ResourceId"] == put.resource_id.as_str())
                {
                    continue;
                }
                for item in &put.items {
                    items.push(json!({
                        "ComplianceType": "Custom:PatchPreflight",
                        "ResourceType": "ManagedInstance",
                        "ResourceId": put.resource_id,
                        "Id": item["Id"],
                        "Title": item["Title"],
                        "Status": item["Status"],
                        "Severity": item["Severity"],
                        "Details": item["Details"],
                        "ExecutionSummary": {"ExecutionTime": put.execution_time, "ExecutionId": put.execution_id, "ExecutionType": "ssm-preflight"},
                    }));
                }
            }
            ok(json!({ "ComplianceItems": items }))
        }
        "AmazonSSM.DescribeMaintenanceWindowSchedule" => {
            let s = state.lock().unwrap();
            // As SSM: every target's key and values must match, and a
            // resource type other than INSTANCE finds no instance's window
            // (issue #17 item 9).
            let targets = input["Targets"].as_array().cloned().unwrap_or_default();
            if targets.len() != 1 || input["ResourceType"] != "INSTANCE" {
                return ok(json!({ "ScheduledWindowExecutions": [] }));
            }
            let key = targets[0]["Key"].as_str().unwrap_or_default();
            let values: Vec<&str> = targets[0]["Values"]
                .as_array()
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let found: Vec<Value> = s
                .schedules
                .iter()
                .filter(|(k, v, _)| k == key && values.contains(&v.as_str()))
                .map(|(_, _, w)| w.clone())
                .collect();
            ok(json!({ "ScheduledWindowExecutions": found }))
        }
        other => error(
            400,
            "UnknownOperationException",
            &format!("the fake does not serve {other}"),
        ),
    }
}

fn len_between(v: &Value, field: &str, min: usize, max: usize) -> Result<(), String> {
    let n = v
        .as_str()
        .map(|s| s.chars().count())
        .ok_or_else(|| format!("{field} is required"))?;
    if n < min || n > max {
        return Err(format!("1 validation error detected: Value at '{field}' failed to satisfy constraint: Member must have length between {min} and {max}"));
    }
    Ok(())
}

/// PutComplianceItems' documented constraints.
fn validate_put(input: &Value) -> Result<Put, String> {
    len_between(&input["ResourceId"], "resourceId", 1, 100)?;
    len_between(&input["ResourceType"], "resourceType", 1, 50)?;
    len_between(&input["ComplianceType"], "complianceType", 1, 100)?;
    let ct = input["ComplianceType"].as_str().unwrap();
    // [A-Za-z0-9_\-]\w+|Custom:[a-zA-Z0-9_\-]\w+
    let word = |s: &str| {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            && s.len() >= 2
            && chars.all(|c| c.is_alphanumeric() || c == '_')
    };
    let valid_type = match ct.strip_prefix("Custom:") {
        Some(rest) => word(rest),
        None => word(ct),
    };
    if !valid_type {
        return Err("Value at 'complianceType' failed to satisfy constraint: Member must satisfy regular expression pattern: [A-Za-z0-9_\\-]\\w+|Custom:[a-zA-Z0-9_\\-]\\w+".into());
    }
    let summary = &input["ExecutionSummary"];
    let time = summary["ExecutionTime"]
        .as_f64()
        .ok_or("ExecutionSummary.ExecutionTime is required")?;
    if let Some(id) = summary.get("ExecutionId") {
        len_between(id, "executionSummary.executionId", 1, 100)?;
    }
    if !matches!(
        input["UploadType"].as_str(),
        None | Some("COMPLETE") | Some("PARTIAL")
    ) {
        return Err(
            "Value at 'uploadType' failed to satisfy enum value set: [COMPLETE, PARTIAL]".into(),
        );
    }
    let items = input["Items"].as_array().ok_or("Items is required")?;
    if items.len() > 10_000 {
        return Err("Value at 'items' failed to satisfy constraint: Member must have length less than or equal to 10000".into());
    }
    for item in items {
        if let Some(id) = item.get("Id") {
            len_between(id, "items.member.id", 1, 100)?;
        }
        if let Some(title) = item.get("Title") {
            len_between(title, "items.member.title", 0, 500)?;
        }
        if !matches!(
            item["Severity"].as_str(),
            Some("CRITICAL" | "HIGH" | "MEDIUM" | "LOW" | "INFORMATIONAL" | "UNSPECIFIED")
        ) {
            return Err("Value at 'items.member.severity' failed to satisfy enum value set".into());
        }
        if !matches!(item["Status"].as_str(), Some("COMPLIANT" | "NON_COMPLIANT")) {
            return Err("Value at 'items.member.status' failed to satisfy enum value set".into());
        }
        if let Some(details) = item["Details"].as_object() {
            for (k, v) in details {
                if k.is_empty() || k.chars().count() > 64 {
                    return Err("Value at 'items.member.details' failed to satisfy constraint: Map keys must have length between 1 and 64".into());
                }
                if v.as_str().map(|s| s.chars().count()).unwrap_or(0) > 4096 {
                    return Err("Value at 'items.member.details' failed to satisfy constraint: Map value must have length less than or equal to 4096".into());
                }
            }
        }
    }
    Ok(Put {
        resource_id: input["ResourceId"].as_str().unwrap().to_string(),
        execution_id: summary["ExecutionId"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        execution_time: time,
        items: items.clone(),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&key, data).as_ref().to_vec()
}

/// Recomputes the request's SigV4 signature (from the specification) with
/// the fake's secret and compares it with the one sent.
fn verify_sigv4(parts: &hyper::http::request::Parts, body: &[u8]) -> Result<(), String> {
    let auth = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or("no Authorization header")?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("not AWS4-HMAC-SHA256")?;
    let mut credential = "";
    let mut signed_headers = "";
    let mut signature = "";
    for part in rest.split(", ") {
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = v;
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed_headers = v;
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = v;
        }
    }
    let mut scope = credential.split('/');
    let (key_id, date, region, service) = (
        scope.next().unwrap_or(""),
        scope.next().unwrap_or(""),
        scope.next().unwrap_or(""),
        scope.next().unwrap_or(""),
    );
    if key_id != ACCESS_KEY {
        return Err(format!("unknown access key {key_id}"));
    }
    let amz_date = parts
        .headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or("no X-Amz-Date")?;
    let mut canonical_headers = String::new();
    for name in signed_headers.split(';') {
        let value = parts
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join(",");
        canonical_headers.push_str(&format!("{name}:{value}\n"));
    }
    let body_hash = hex(ring::digest::digest(&ring::digest::SHA256, body).as_ref());
    let path = if parts.uri.path().is_empty() {
        "/"
    } else {
        parts.uri.path()
    };
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        parts.method,
        path,
        parts.uri.query().unwrap_or(""),
        canonical_headers,
        signed_headers,
        body_hash
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{date}/{region}/{service}/aws4_request\n{}",
        hex(ring::digest::digest(&ring::digest::SHA256, canonical_request.as_bytes()).as_ref())
    );
    let k_date = hmac(format!("AWS4{SECRET_KEY}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    let expected = hex(&hmac(&k_signing, string_to_sign.as_bytes()));
    if expected == signature {
        Ok(())
    } else {
        Err("The request signature we calculated does not match the signature you provided.".into())
    }
}
