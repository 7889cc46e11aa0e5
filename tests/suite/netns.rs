//! End to end with the real addresses, in a network namespace this test
//! makes (no route out): 169.254.169.254 and the endpoints' private
//! addresses on its `lo`, the real names pointed at them with
//! `/etc/netns/<ns>/hosts`, and the built binary run there with
//! `--mode ec2` and no address overridden. Needs root, so it is ignored by
//! a plain `cargo test`; `scripts/test` runs it when it runs as root.

use crate::common;

use common::fake_aws::{self, ImdsData, TestCa};
use common::fake_ssm;
use std::process::Command;
use std::sync::mpsc;

const REGION: &str = "eu-west-1";
const SERVICES: &[(&str, &str)] = &[
    ("ssm", "10.0.1.1"),
    ("ssmmessages", "10.0.1.2"),
    ("ec2messages", "10.0.1.3"),
    ("s3", "10.0.1.4"),
];
const REPO_ADDR: &str = "10.0.1.5";
/// STS under its regional name: `credentials.valid` asks it.
const STS_ADDR: &str = "10.0.1.6";
/// The patch payload's host as AWS-RunPatchBaseline names it in this
/// (old-bucket) region: `payload.reachable` asks it.
const PAYLOAD_HOST: &str = "s3.dualstack.eu-west-1.amazonaws.com";
const PAYLOAD_ADDR: &str = "10.0.1.7";
/// Where the document sends a region that does not keep the old bucket:
/// S3 Transfer Acceleration, the bucket in the host name.
const ACCELERATE_HOST: &str = "aws-patch-manager-eu-west-1.s3-accelerate.dualstack.amazonaws.com";
const ACCELERATE_ADDR: &str = "10.0.1.8";

fn ip(args: &[&str]) {
    let status = Command::new("ip")
        .args(args)
        .status()
        .expect("ip (iproute2) is needed");
    assert!(status.success(), "ip {args:?} failed");
}

/// A network namespace with only `lo`, removed on drop.
struct Namespace {
    name: String,
}

impl Namespace {
    fn create(hosts: &str) -> Namespace {
        let name = format!("ssmpf-test-{}", std::process::id());
        ip(&["netns", "add", &name]);
        let ns = Namespace { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            &ns.name,
            "addr",
            "add",
            "169.254.169.254/32",
            "dev",
            "lo",
        ]);
        for (_, addr) in SERVICES {
            ip(&[
                "-n",
                &ns.name,
                "addr",
                "add",
                &format!("{addr}/32"),
                "dev",
                "lo",
            ]);
        }
        for addr in [REPO_ADDR, STS_ADDR, PAYLOAD_ADDR, ACCELERATE_ADDR] {
            ip(&[
                "-n",
                &ns.name,
                "addr",
                "add",
                &format!("{addr}/32"),
                "dev",
                "lo",
            ]);
        }
        let etc = format!("/etc/netns/{}", ns.name);
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(format!("{etc}/hosts"), hosts).unwrap();
        ns
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", self.name));
    }
}

/// Serves the fakes from a thread that has entered the namespace: sockets
/// it makes live there. Returns when they listen; they stop when `stop` drops.
fn serve_inside(
    ns: &str,
    ca: &TestCa,
    mirror: std::path::PathBuf,
) -> (mpsc::Sender<()>, fake_ssm::Shared) {
    let (ready_tx, ready_rx) = mpsc::channel();
    let (ssm_tx, ssm_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let path = format!("/run/netns/{ns}");
    let configs: Vec<_> = SERVICES
        .iter()
        .map(|(service, addr)| {
            (
                *addr,
                ca.server_config(&[&format!("{service}.{REGION}.amazonaws.com")]),
            )
        })
        .collect();
    let sts_config = ca.server_config(&[&format!("sts.{REGION}.amazonaws.com")]);
    let payload_config = ca.server_config(&[PAYLOAD_HOST]);
    let accelerate_config = ca.server_config(&[ACCELERATE_HOST]);
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap();
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let imds = tokio::net::TcpListener::bind("169.254.169.254:80")
                .await
                .unwrap();
            tokio::spawn(fake_aws::start_imds(
                imds,
                ImdsData {
                    instance_id: "i-0netns".into(),
                    region: REGION.into(),
                    role: Some("SSMCore".into()),
                    tags: None,
                },
            ));
            for (addr, config) in configs {
                let l = tokio::net::TcpListener::bind((addr, 443)).await.unwrap();
                if addr == SERVICES[0].1 {
                    // SSM itself answers the API the cloud checks call.
                    let ssm = fake_ssm::serve(l, Some(config));
                    ssm_tx.send(ssm.clone()).unwrap();
                    let mut s = ssm.lock().unwrap();
                    s.cloud = fake_ssm::Cloud::healthy("i-0netns", "production-linux", "mw-0netns0000000000");
                    s.schedules.push((
                        "InstanceIds".into(),
                        "i-0netns".into(),
                        serde_json::json!({"WindowId": "mw-0netns0000000000", "Name": "production-linux", "ExecutionTime": fake_ssm::next_start()}),
                    ));
                } else {
                    tokio::spawn(fake_aws::serve_tls(l, config, 0));
                }
            }
            let accelerate = tokio::net::TcpListener::bind((ACCELERATE_ADDR, 443)).await.unwrap();
            tokio::spawn(fake_aws::serve_s3(
                accelerate,
                Some(accelerate_config),
                vec![fake_aws::S3Object {
                    path: format!("/{}", fake_ssm::PAYLOAD_KEY),
                    status: 200,
                    body: String::new(),
                }],
                Default::default(),
            ));
            let payload = tokio::net::TcpListener::bind((PAYLOAD_ADDR, 443)).await.unwrap();
            tokio::spawn(fake_aws::serve_s3(
                payload,
                Some(payload_config),
                vec![fake_aws::S3Object {
                    path: format!("/aws-ssm-{REGION}/{}", fake_ssm::PAYLOAD_KEY),
                    status: 200,
                    body: String::new(),
                }],
                Default::default(),
            ));
            let repo = tokio::net::TcpListener::bind((REPO_ADDR, 80))
                .await
                .unwrap();
            tokio::spawn(common::signed_repo::serve_files(repo, mirror));
            let sts = tokio::net::TcpListener::bind((STS_ADDR, 443))
                .await
                .unwrap();
            tokio::spawn(fake_aws::serve_sts(
                sts,
                Some(sts_config),
                fake_aws::StsAnswer::Accept(
                    "arn:aws:sts::123456789012:assumed-role/SSMCore/i-0netns".into(),
                ),
                Default::default(),
            ));
            ready_tx.send(()).unwrap();
            // Serve until the test drops its sender.
            let _ = tokio::task::spawn_blocking(move || stop_rx.recv()).await;
        });
    });
    ready_rx.recv().unwrap();
    (stop_tx, ssm_rx.recv().unwrap())
}

#[test]
#[ignore = "needs root: makes a network namespace (scripts/test runs it as root)"]
fn ec2_mode_with_default_addresses_in_a_network_namespace() {
    let mut hosts = String::from("127.0.0.1 localhost\n");
    for (service, addr) in SERVICES {
        hosts.push_str(&format!("{addr} {service}.{REGION}.amazonaws.com\n"));
    }
    hosts.push_str(&format!("{REPO_ADDR} repo.internal\n"));
    hosts.push_str(&format!("{STS_ADDR} sts.{REGION}.amazonaws.com\n"));
    hosts.push_str(&format!("{PAYLOAD_ADDR} {PAYLOAD_HOST}\n"));
    hosts.push_str(&format!("{ACCELERATE_ADDR} {ACCELERATE_HOST}\n"));
    let ns = Namespace::create(&hosts);
    let ca = TestCa::new("netns test CA");
    let mirror = common::signed_repo::GoodMirror::new();
    let (_stop, ssm) = serve_inside(&ns.name, &ca, mirror.served.path().to_path_buf());

    let root = common::fixture_root("debian12-clean");
    common::install_agent_binary(root.path());
    std::fs::create_dir_all(root.path().join("etc/apt")).unwrap();
    std::fs::write(
        root.path().join("etc/apt/sources.list"),
        "deb http://repo.internal/debian bookworm main\n",
    )
    .unwrap();
    mirror.trust_in(root.path());
    let config = root.path().join("preflight.toml");
    // The tag comes from the config: this namespace has no EC2 API to ask.
    std::fs::write(&config, "[patch_group]\nvalue = \"production-linux\"\n").unwrap();

    let run = |args: &[&str]| {
        Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(env!("CARGO_BIN_EXE_ssm-preflight"))
            .args(["check", "--json", "--mode", "ec2", "--root"])
            .arg(root.path())
            .arg("--config")
            .arg(&config)
            .args(args)
            .env_remove("AWS_EC2_METADATA_DISABLED")
            .env_remove("AWS_EC2_METADATA_SERVICE_ENDPOINT")
            .env("DBUS_SYSTEM_BUS_ADDRESS", common::NO_BUS)
            .env("SSL_CERT_FILE", &ca.pem_path)
            .env_remove("SSL_CERT_DIR")
            .output()
            .unwrap()
    };
    let out = run(&[]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    let check = |id: &str| {
        json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap()
            .clone()
    };

    assert_eq!(json["host"]["instance_id"], "i-0netns", "{json:#}");
    assert_eq!(json["host"]["region"], REGION);
    assert_eq!(check("agent.identity")["status"], "pass");
    assert_eq!(check("credentials.role")["status"], "pass");
    for (service, addr) in SERVICES {
        let c = check(&format!("endpoint.{service}"));
        assert_eq!(c["status"], "pass", "{c:#}");
        let summary = c["summary"].as_str().unwrap();
        assert!(
            summary.starts_with(&format!("{service}.{REGION}.amazonaws.com answers on 443 at {addr}, a VPC endpoint (private address), TLS verified")),
            "{summary}"
        );
    }
    assert_eq!(
        check("repo.reachable")["status"],
        "pass",
        "{:#}",
        check("repo.reachable")
    );
    assert_eq!(
        check("repo.signature")["status"],
        "pass",
        "{:#}",
        check("repo.signature")
    );
    assert_eq!(
        check("clock.sync")["status"],
        "pass",
        "{:#}",
        check("clock.sync")
    );
    assert_eq!(check("patchgroup.tag")["status"], "pass");
    // How SSM sees the node, from SSM's API at its real name.
    for id in [
        "ssm.ping",
        "patchgroup.baseline",
        "patch.sources",
        "patch.last_run",
    ] {
        assert_eq!(check(id)["status"], "pass", "{:#}", check(id));
    }
    // The payload, at the host AWS-RunPatchBaseline names for this region.
    let payload = check("payload.reachable");
    assert_eq!(payload["status"], "pass", "{payload:#}");
    assert_eq!(
        payload["details"]["url"],
        format!(
            "https://{PAYLOAD_HOST}/aws-ssm-{REGION}/{}",
            fake_ssm::PAYLOAD_KEY
        )
    );
    let valid = check("credentials.valid");
    assert_eq!(valid["status"], "pass", "{valid:#}");
    assert!(
        valid["details"]["endpoint"] == format!("https://sts.{REGION}.amazonaws.com"),
        "the regional STS name: {valid:#}"
    );
    assert_eq!(out.status.code(), Some(0), "{json:#}");

    // A document whose old-bucket regions leave this one out sends the
    // payload to S3 Transfer Acceleration, the bucket in the host name.
    ssm.lock().unwrap().cloud.patch_document = Some(fake_ssm::patch_document_with_old_regions(&[
        "us-east-1",
        "ap-south-1",
    ]));
    let out = run(&["--only", "payload.reachable"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    let payload = &json["checks"][0];
    assert_eq!(payload["status"], "pass", "{payload:#}");
    assert_eq!(
        payload["details"]["url"],
        format!("https://{ACCELERATE_HOST}/{}", fake_ssm::PAYLOAD_KEY)
    );
}
