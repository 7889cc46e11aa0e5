//! One compliance report through the production path: `compliance::upload`
//! (limits applied) and `aws::compliance::send` with the client
//! `aws::sdk::ssm_client` builds — the SDK's awsJson1_1 serialization, its
//! SigV4 signing and the HTTP exchange — against a loopback endpoint that
//! answers `{}` at once, so what is timed is our work and the SDK's, plus
//! one loopback round trip (printed beside it, measured alone).
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

/// A loopback SSM that answers every call with `{}` and counts them.
async fn sink() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let counted = counted.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let counted = counted.clone();
                        async move {
                            let target = req
                                .headers()
                                .get("x-amz-target")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_string();
                            let signed = req.headers().contains_key("authorization");
                            let _ = req.into_body().collect().await;
                            if target == "AmazonSSM.PutComplianceItems" && signed {
                                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .header("content-type", "application/x-amz-json-1.1")
                                    .body(Full::new(Bytes::from_static(b"{}")))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    (addr, calls)
}

fn main() {
    if std::env::args().any(|a| a == "--test") {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let run = report();
    let (addr, calls) = rt.block_on(sink());
    let mut settings = ssm_preflight::config::Settings::default();
    settings
        .endpoints
        .urls
        .insert("ssm".into(), format!("http://{addr}"));
    let credentials = ssm_preflight::aws::sdk::Credentials {
        provider: aws_credential_types::provider::SharedCredentialsProvider::new(
            aws_credential_types::Credentials::new(
                "AKIDEXAMPLE",
                "secret",
                Some("token".into()),
                None,
                "bench",
            ),
        ),
        source: "bench".into(),
    };
    let client = ssm_preflight::aws::sdk::ssm_client(&settings, "eu-west-1", &credentials);
    const N: usize = 1000;
    let mut times = Vec::with_capacity(N);
    rt.block_on(async {
        for _ in 0..N + 20 {
            let started = Instant::now();
            let upload = compliance::upload(
                &run,
                &settings.gate,
                "i-0123456789abcdef0",
                "5f0c8a52-7d0e-4d1e-9a57-5b7f1c3f2a10",
            );
            ssm_preflight::aws::compliance::send(&client, &upload)
                .await
                .expect("the loopback SSM takes the report");
            times.push(started.elapsed());
        }
    });
    // The first calls open the connection; the rest reuse it, as a
    // daemon's report after a retry would.
    let times = &mut times[20..];
    times.sort();
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::Relaxed),
        N + 20,
        "every report arrived, signed, as PutComplianceItems"
    );
    // One loopback round trip alone, for scale.
    let mut trips = Vec::new();
    rt.block_on(async {
        let http = reqwest::Client::builder().build().unwrap();
        for _ in 0..200 {
            let t = Instant::now();
            let _ = http
                .post(format!("http://{addr}/"))
                .body("{}")
                .send()
                .await
                .unwrap()
                .bytes()
                .await;
            trips.push(t.elapsed());
        }
    });
    trips.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let median = times[N / 2];
    let verdict = if median <= Duration::from_millis(5) {
        "within"
    } else {
        "OVER"
    };
    println!(
        "upload + SDK serialize + sign + send one report (20 checks, 3 truncated) to a loopback SSM: runs={N} median={:.1} µs p99={:.1} µs max={:.1} µs — {verdict} the budget of 5000 µs; one loopback round trip alone: median {:.1} µs",
        us(median),
        us(times[N * 99 / 100]),
        us(times[N - 1]),
        us(trips[100])
    );
}
