//! The AWS side of a managed EC2 node on loopback, healthy: fake IMDSv2
//! (role, tags), STS, EC2 tags, SSM over TLS with a window and its gated
//! patch task, S3 (the agent's newest version, the payload), the messages
//! endpoints, a Debian repository (signed, its key trusted); and a node root (os-release, the agent's
//! binary, a sources.list naming the repository). Shared by `check_cli` and
//! `daemon_idle`, which measure the same node.

use crate::signed_repo::{serve_files, GoodMirror};
use crate::{fake_aws, fake_ssm};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian's trust store, as rustls-native-certs finds it on a node.
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
const SYSTEM_CERT_DIR: &str = "/etc/ssl/certs";

pub struct Site {
    /// `[endpoints.urls]` pointing every endpoint at its fake.
    pub urls: String,
    pub imds: String,
    pub ec2: String,
    pub sts: String,
    /// A listener that accepts and never answers (check_cli's black-holed
    /// scenario; daemon_idle has none).
    #[allow(dead_code)]
    pub silent: std::net::SocketAddr,
    /// The test CA (its files live as long as the site).
    _ca: fake_aws::TestCa,
    /// The system's CA bundle with the test CA added.
    pub trust_store: PathBuf,
    /// The node's root, for `--root`.
    pub root: PathBuf,
    /// The repository's signed files (served while the site lives).
    _mirror: GoodMirror,
}

impl Site {
    /// Points `cmd` at the fakes: IMDS, EC2 and STS by environment, and a
    /// trust store as a node's: the system's bundle with the test CA added,
    /// and the system's certificate directory, both of which are read
    /// (the roots' reading is part of every run's cost).
    pub fn aim(&self, cmd: &mut Command) {
        cmd.env_remove("AWS_EC2_METADATA_DISABLED")
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &self.imds)
            .env("AWS_ENDPOINT_URL_EC2", &self.ec2)
            .env("AWS_ENDPOINT_URL_STS", &self.sts)
            .env("SSL_CERT_FILE", &self.trust_store)
            .env("SSL_CERT_DIR", SYSTEM_CERT_DIR);
    }
}

/// Starts the fakes on `rt` (they serve for as long as it runs) and writes
/// the node's root under `scratch`.
pub fn healthy(rt: &tokio::runtime::Runtime, scratch: &Path, fixtures: &Path) -> Site {
    let ca = fake_aws::TestCa::new("bench CA");
    let mirror = GoodMirror::new();
    let served = mirror.served.path().to_path_buf();
    let (urls, imds, ec2, repo, sts, silent) = rt.block_on(async {
    let mut urls = String::from("[endpoints.urls]\n");
    // SSM itself, over TLS: the endpoint probe and the cloud checks'
    // calls reach one address, as in production.
    let (ssm, ssm_addr) = fake_ssm::start_tls(ca.server_config(&["localhost"])).await;
    {
        let mut s = ssm.lock().unwrap();
        s.cloud = fake_ssm::Cloud::healthy("i-0bench", "bench", "mw-0be0c00000000000a");
        s.cloud.instances[0]["PlatformVersion"] = serde_json::json!("12");
        s.schedules.push((
            "InstanceIds".into(),
            "i-0bench".into(),
            serde_json::json!({"WindowId": "mw-0be0c00000000000a", "Name": "bench", "ExecutionTime": fake_ssm::next_start()}),
        ));
    }
    urls.push_str(&format!("ssm = \"https://localhost:{}\"\n", ssm_addr.port()));
    // S3: the region's newest agent and the patch payload (eu-west-1
    // keeps the old bucket, path-style), which payload.reachable asks for.
    let (l, s3) = fake_aws::listener().await;
    tokio::spawn(fake_aws::serve_s3(
        l,
        Some(ca.server_config(&["localhost"])),
        vec![
            fake_aws::S3Object {
                path: "/amazon-ssm-eu-west-1/latest/VERSION".into(),
                status: 200,
                body: fake_aws::AGENT_LATEST.into(),
            },
            fake_aws::S3Object {
                path: format!("/aws-ssm-eu-west-1/{}", fake_ssm::PAYLOAD_KEY),
                status: 200,
                body: String::new(),
            },
        ],
        Default::default(),
    ));
    urls.push_str(&format!(
        "s3 = \"https://localhost:{port}\"\npayload = \"https://localhost:{port}\"\n",
        port = s3.port()
    ));
    for service in ["ssmmessages", "ec2messages"] {
        let (l, addr) = fake_aws::listener().await;
        tokio::spawn(fake_aws::serve_tls(l, ca.server_config(&["localhost"]), 0));
        urls.push_str(&format!(
            "{service} = \"https://localhost:{}\"\n",
            addr.port()
        ));
    }
    let (l, imds) = fake_aws::listener().await;
    let data = fake_aws::ImdsData {
        instance_id: "i-0bench".into(),
        region: "eu-west-1".into(),
        role: Some("SSMCore".into()),
        tags: Some(vec![("PatchGroup".into(), "bench".into())]),
    };
    tokio::spawn(fake_aws::start_imds(l, data));
    let (l, ec2) = fake_aws::listener().await;
    tokio::spawn(fake_aws::start_ec2(
        l,
        vec![("PatchGroup".into(), "bench".into())],
        true,
    ));
    let (l, repo) = fake_aws::listener().await;
    tokio::spawn(serve_files(l, served));
    let (l, sts) = fake_aws::listener().await;
    tokio::spawn(fake_aws::start_sts(
        l,
        fake_aws::StsAnswer::Accept(
            "arn:aws:sts::123456789012:assumed-role/SSMCore/i-0bench".into(),
        ),
        Default::default(),
    ));
    let (l, silent_base) = fake_aws::listener().await;
    tokio::spawn(fake_aws::serve_silence(l));
        (
            urls,
            format!("http://{imds}"),
            format!("http://{ec2}"),
            format!("http://{repo}"),
            format!("http://{sts}"),
            silent_base,
        )
    });
    // A managed Debian node: its os-release and the agent's binary.
    let root = scratch.join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::copy(
        fixtures.join("debian12-clean/etc/os-release"),
        root.join("etc/os-release"),
    )
    .unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::copy(
        fixtures.join("agent-host/usr/bin/amazon-ssm-agent"),
        root.join("usr/bin/amazon-ssm-agent"),
    )
    .unwrap();
    std::fs::create_dir_all(root.join("etc/apt")).unwrap();
    std::fs::write(
        root.join("etc/apt/sources.list"),
        format!("deb {repo}/debian bookworm main\n"),
    )
    .unwrap();
    mirror.trust_in(&root);
    // Without the system's bundle (not Debian?), the test CA alone.
    let mut bundle = std::fs::read(SYSTEM_BUNDLE).unwrap_or_default();
    bundle.extend(std::fs::read(&ca.pem_path).unwrap());
    let trust_store = scratch.join("trust-store.pem");
    std::fs::write(&trust_store, bundle).unwrap();
    Site {
        urls,
        imds,
        ec2,
        sts,
        silent,
        _ca: ca,
        trust_store,
        root,
        _mirror: mirror,
    }
}
