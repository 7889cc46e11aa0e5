//! The AWS side on loopback: endpoint probes against TLS servers made with
//! a test CA, a CONNECT proxy, a fake IMDSv2 and fake EC2, repositories
//! served locally, and the built binary in `ec2` mode against all of them.

use crate::common;

use common::fake_aws::{self, ImdsData, TestCa};
use ssm_preflight::aws::identity::{self, Role};
use ssm_preflight::network::endpoints::{self, Failure, Proxy, Target};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn target(host: &str, port: u16) -> Target {
    Target {
        service: "ssm".into(),
        host: host.into(),
        port,
    }
}

const T: Duration = Duration::from_secs(3);

#[tokio::test]
async fn a_healthy_endpoint_answers_with_its_date() {
    let ca = TestCa::new("test CA");
    let (l, addr) = fake_aws::listener().await;
    tokio::spawn(fake_aws::serve_tls(l, ca.server_config(&["localhost"]), 0));
    let p = endpoints::probe(
        target("localhost", addr.port()),
        ca.client_config(),
        None,
        T,
    )
    .await;
    let answer = p.result.expect("healthy");
    assert_eq!(answer.status, 404);
    assert!(answer.date.is_some());
    assert_eq!(answer.addr.unwrap().port(), addr.port());
    assert!(p.addresses.iter().any(|a| a.is_loopback()));
}

#[tokio::test]
async fn refused_and_blackholed() {
    let ca = TestCa::new("test CA");
    let closed = fake_aws::refused_port().await;
    let p = endpoints::probe(
        target("127.0.0.1", closed.port()),
        ca.client_config(),
        None,
        T,
    )
    .await;
    assert!(
        matches!(p.result, Err(Failure::Refused(a)) if a.port() == closed.port()),
        "{:?}",
        p.result
    );

    let (l, addr) = fake_aws::listener().await;
    tokio::spawn(fake_aws::serve_silence(l));
    let p = endpoints::probe(
        target("127.0.0.1", addr.port()),
        ca.client_config(),
        None,
        Duration::from_millis(400),
    )
    .await;
    assert_eq!(
        p.result,
        Err(Failure::TimedOut {
            step: "TLS handshake",
            addr: Some(addr)
        })
    );
}

#[tokio::test]
async fn an_untrusted_ca_and_a_wrong_name() {
    let trusted = TestCa::new("trusted");
    let intercepting = TestCa::new("a TLS-inspecting proxy");
    let (l, addr) = fake_aws::listener().await;
    tokio::spawn(fake_aws::serve_tls(
        l,
        intercepting.server_config(&["localhost"]),
        0,
    ));
    let p = endpoints::probe(
        target("localhost", addr.port()),
        trusted.client_config(),
        None,
        T,
    )
    .await;
    assert!(
        matches!(p.result, Err(Failure::UntrustedCertificate { .. })),
        "{:?}",
        p.result
    );

    let (l, addr) = fake_aws::listener().await;
    tokio::spawn(fake_aws::serve_tls(
        l,
        trusted.server_config(&["someone-else.example"]),
        0,
    ));
    let p = endpoints::probe(
        target("localhost", addr.port()),
        trusted.client_config(),
        None,
        T,
    )
    .await;
    assert!(
        matches!(p.result, Err(Failure::WrongName { .. })),
        "{:?}",
        p.result
    );
}

#[tokio::test]
async fn through_a_proxy_that_must_be_used() {
    let ca = TestCa::new("test CA");
    let (l, tls_addr) = fake_aws::listener().await;
    tokio::spawn(fake_aws::serve_tls(
        l,
        ca.server_config(&["ssm.eu-west-1.amazonaws.com"]),
        0,
    ));
    let mut routes = HashMap::new();
    routes.insert("ssm.eu-west-1.amazonaws.com:443".to_string(), tls_addr);
    let proxy = fake_aws::start_proxy(routes).await;
    let via = Proxy::parse(&format!("http://{}", proxy.addr)).unwrap();
    // The real name: only the proxy knows where it goes, nothing is resolved here.
    let p = endpoints::probe(
        target("ssm.eu-west-1.amazonaws.com", 443),
        ca.client_config(),
        Some(via.clone()),
        T,
    )
    .await;
    assert!(p.result.is_ok(), "{:?}", p.result);
    assert_eq!(p.via_proxy.as_deref(), Some(via.url.as_str()));
    assert!(
        p.addresses.is_empty(),
        "the target was not resolved locally"
    );
    assert_eq!(
        *proxy.tunnels.lock().unwrap(),
        vec!["ssm.eu-west-1.amazonaws.com:443"]
    );

    let p = endpoints::probe(
        target("ssmmessages.eu-west-1.amazonaws.com", 443),
        ca.client_config(),
        Some(via),
        T,
    )
    .await;
    assert!(
        matches!(&p.result, Err(Failure::ProxyRefused { status, .. }) if status == "403 Forbidden"),
        "{:?}",
        p.result
    );
}

#[tokio::test]
async fn imds_v2_identity_role_and_tags() {
    let (l, addr) = fake_aws::listener().await;
    let data = ImdsData {
        instance_id: "i-0test".into(),
        region: "eu-west-1".into(),
        role: Some("SSMCore".into()),
        tags: Some(vec![
            ("PatchGroup".into(), "production-linux".into()),
            ("Name".into(), "web".into()),
        ]),
    };
    tokio::spawn(fake_aws::start_imds(l, data));
    let url = format!("http://{addr}");
    // Without a token the fake says 401, as IMDSv2 does.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let raw = reqwest::get(format!("{url}/latest/dynamic/instance-identity/document"))
        .await
        .unwrap();
    assert_eq!(raw.status(), 401);

    let client = identity::imds_client(Some(&url)).unwrap();
    let id = identity::from_imds(&client).await.unwrap();
    assert_eq!(
        (id.instance_id.as_str(), id.region.as_str()),
        ("i-0test", "eu-west-1")
    );
    assert_eq!(
        id.role,
        Some(Role::Attached {
            name: "SSMCore".into()
        })
    );
    assert_eq!(
        identity::role_status(&client, "SSMCore").await,
        Ok(identity::RoleStatus {
            code: "Success".into(),
            expiration: Some("2099-11-26T16:00:00Z".into())
        })
    );
    let tag = ssm_preflight::aws::tags::from_imds(&client)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tag.value, "production-linux");

    let (l, addr) = fake_aws::listener().await;
    tokio::spawn(fake_aws::start_imds(
        l,
        ImdsData {
            instance_id: "i-1".into(),
            region: "us-east-1".into(),
            role: None,
            tags: None,
        },
    ));
    let client = identity::imds_client(Some(&format!("http://{addr}"))).unwrap();
    assert_eq!(
        identity::from_imds(&client).await.unwrap().role,
        Some(Role::None)
    );
    let tags = ssm_preflight::aws::tags::from_imds(&client).await;
    assert!(tags
        .unwrap_err()
        .to_string()
        .contains("InstanceMetadataTags disabled"));

    // A role name no IAM role can have (a newline in it): named, and no
    // request is ever built from it.
    let (l, addr) = fake_aws::listener().await;
    tokio::spawn(fake_aws::start_imds(
        l,
        ImdsData {
            instance_id: "i-2".into(),
            region: "us-east-1".into(),
            role: Some("Bad\nRole".into()),
            tags: None,
        },
    ));
    let client = identity::imds_client(Some(&format!("http://{addr}"))).unwrap();
    let id = identity::from_imds(&client).await.unwrap();
    match &id.role {
        Some(Role::Unknown(why)) => assert!(
            why.contains(
                r#"IMDS lists the role "Bad\nRole", which is not one valid IAM role name"#
            ),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
    let root = ssm_preflight::host::Root::new("/nonexistent");
    let settings = ssm_preflight::config::Settings::default();
    let imds = identity::Imds::new(Some(&format!("http://{addr}")));
    let err = ssm_preflight::aws::sdk::credentials(&root, &settings, &id, &imds).err();
    assert!(
        err.is_some_and(|e| e
            .to_string()
            .contains("the instance profile cannot be used")),
        "no credentials provider is built from a bad role name"
    );

    // An identity document whose instance ID could break a request.
    let (l, addr) = fake_aws::listener().await;
    tokio::spawn(fake_aws::start_imds(
        l,
        ImdsData {
            instance_id: "i-0abc/../x".into(),
            region: "us-east-1".into(),
            role: None,
            tags: None,
        },
    ));
    let client = identity::imds_client(Some(&format!("http://{addr}"))).unwrap();
    match identity::from_imds(&client).await {
        Err(identity::IdentityError::Failed { what, .. }) => assert!(
            what.contains(r#"the instance ID "i-0abc/../x", which is not one"#),
            "{what}"
        ),
        other => panic!("{other:?}"),
    }
}

/// Everything an EC2 node talks to, on loopback.
struct FakeEc2Site {
    ca: TestCa,
    imds: String,
    ec2: String,
    /// STS, answering as the site's clock says (accepting, or refusing a
    /// signature made more than 5 minutes off its clock).
    sts: String,
    sts_calls: Arc<AtomicUsize>,
    endpoints: Vec<(String, u16)>,
    repo: String,
    /// The repository's files and its signing key.
    mirror: common::signed_repo::GoodMirror,
}

/// A fake STS on loopback answering `answer`: its URL and its call count.
async fn sts(answer: fake_aws::StsAnswer) -> (String, Arc<AtomicUsize>) {
    let (l, addr) = fake_aws::listener().await;
    let calls = Arc::new(AtomicUsize::new(0));
    tokio::spawn(fake_aws::start_sts(l, answer, calls.clone()));
    (format!("http://{addr}"), calls)
}

async fn site(tags_allowed: bool, skewed_secs: i64) -> FakeEc2Site {
    site_watched(tags_allowed, skewed_secs, Arc::default()).await
}

async fn site_watched(
    tags_allowed: bool,
    skewed_secs: i64,
    imds_watch: Arc<fake_aws::ImdsWatch>,
) -> FakeEc2Site {
    let ca = TestCa::new("test CA");
    let mut endpoints = Vec::new();
    for service in ["ssm", "ssmmessages", "ec2messages", "s3"] {
        let (l, addr) = fake_aws::listener().await;
        let offset = if service == "ssm" { skewed_secs } else { 0 };
        tokio::spawn(fake_aws::serve_tls(
            l,
            ca.server_config(&["localhost"]),
            offset,
        ));
        endpoints.push((service.to_string(), addr.port()));
    }
    let (l, imds) = fake_aws::listener().await;
    tokio::spawn(fake_aws::start_imds_watched(
        l,
        ImdsData {
            instance_id: "i-0test".into(),
            region: "eu-west-1".into(),
            role: Some("SSMCore".into()),
            tags: Some(vec![]),
        },
        imds_watch,
    ));
    let (l, ec2) = fake_aws::listener().await;
    tokio::spawn(fake_aws::start_ec2(
        l,
        vec![("Patch Group".into(), "production-linux".into())],
        tags_allowed,
    ));
    let mirror = common::signed_repo::GoodMirror::new();
    let (l, repo) = fake_aws::listener().await;
    tokio::spawn(common::signed_repo::serve_files(
        l,
        mirror.served.path().to_path_buf(),
    ));
    let (sts, sts_calls) = sts(if skewed_secs == 0 {
        fake_aws::StsAnswer::Accept("arn:aws:sts::123456789012:assumed-role/SSMCore/i-0test".into())
    } else {
        fake_aws::StsAnswer::ClockAhead(skewed_secs)
    })
    .await;
    FakeEc2Site {
        ca,
        imds: format!("http://{imds}"),
        ec2: format!("http://{ec2}"),
        sts,
        sts_calls,
        endpoints,
        repo: format!("http://{repo}"),
        mirror,
    }
}

fn run_ec2(site: &FakeEc2Site, sources: &str) -> (serde_json::Value, Option<i32>) {
    run_ec2_in(site, sources, &common::private_dir("state"))
}

/// `run_ec2` with the state directory `state` (a run recorded there is
/// what this run remembers).
fn run_ec2_in(
    site: &FakeEc2Site,
    sources: &str,
    state: &std::path::Path,
) -> (serde_json::Value, Option<i32>) {
    let root = common::fixture_root("debian12-clean");
    common::install_agent_binary(root.path());
    std::fs::create_dir_all(root.path().join("etc/apt")).unwrap();
    std::fs::write(
        root.path().join("etc/apt/sources.list"),
        sources.replace("REPO", &site.repo),
    )
    .unwrap();
    site.mirror.trust_in(root.path());
    // The cloud checks and payload.reachable ask SSM's API, which these TLS
    // endpoints do not serve: tests/suite/cloud.rs runs them against the
    // fake SSM.
    let mut config = String::from(
        "[checks]\ndisable = [\"cloud\", \"payload.reachable\"]\n[endpoints]\ntimeout = \"2s\"\n[endpoints.urls]\n",
    );
    for (service, port) in &site.endpoints {
        config.push_str(&format!("{service} = \"https://localhost:{port}\"\n"));
    }
    let config_file = root.path().join("preflight.toml");
    std::fs::write(&config_file, config).unwrap();
    let out = common::command(
        root.path(),
        &config_file,
        &["check", "--json", "--mode", "ec2"],
    )
    .env_remove("AWS_EC2_METADATA_DISABLED")
    .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &site.imds)
    .env("AWS_ENDPOINT_URL_EC2", &site.ec2)
    .env("AWS_ENDPOINT_URL_STS", &site.sts)
    .env("SSL_CERT_FILE", &site.ca.pem_path)
    .env_remove("SSL_CERT_DIR")
    .env("STATE_DIRECTORY", state)
    .output()
    .unwrap();
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    (json, out.status.code())
}

fn check<'a>(json: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no {id}"))
}

#[test]
fn the_binary_in_ec2_mode_against_a_healthy_loopback_site() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let site = rt.block_on(site(true, 0));
    let (json, code) = run_ec2(&site, "deb REPO/debian bookworm main\n");
    assert_eq!(json["host"]["mode"], "ec2");
    assert_eq!(json["host"]["instance_id"], "i-0test");
    assert_eq!(json["host"]["region"], "eu-west-1");
    assert_eq!(json["host"]["patch_group"], "production-linux");
    assert_eq!(check(&json, "agent.identity")["status"], "pass", "{json:#}");
    assert_eq!(check(&json, "credentials.role")["status"], "pass");
    for service in ["ssm", "ssmmessages", "ec2messages", "s3"] {
        let c = check(&json, &format!("endpoint.{service}"));
        assert_eq!(c["status"], "pass", "{c:#}");
        assert!(c["summary"]
            .as_str()
            .unwrap()
            .contains("a loopback address, TLS verified, HTTP 404"));
    }
    let repo = check(&json, "repo.reachable");
    assert_eq!(repo["status"], "pass", "{repo:#}");
    let signed = check(&json, "repo.signature");
    assert_eq!(signed["status"], "pass", "{signed:#}");
    let tag = check(&json, "patchgroup.tag");
    assert_eq!(tag["status"], "pass", "{tag:#}");
    assert!(tag["summary"]
        .as_str()
        .unwrap()
        .contains("tag `Patch Group` from ec2:DescribeTags"));
    // No system bus here, but the clock was compared with the ssm endpoint's.
    let clock = check(&json, "clock.sync");
    assert_eq!(clock["status"], "pass", "{clock:#}");
    let valid = check(&json, "credentials.valid");
    assert_eq!(valid["status"], "pass", "{valid:#}");
    assert!(
        valid["summary"]
            .as_str()
            .unwrap()
            .contains("as arn:aws:sts::123456789012:assumed-role/SSMCore/i-0test (account 123456789012); they expire in"),
        "{valid:#}"
    );
    assert_eq!(
        site.sts_calls.load(Ordering::Relaxed),
        1,
        "one STS call per run"
    );
    assert_eq!(
        code,
        Some(0),
        "every check passes or, without a bus or agent, skips: {json:#}"
    );
}

/// The role a recorded run found is asked for beside the role listing,
/// not after it: the listing's answer here waits until that role's
/// credentials are asked for, which only a run that remembers does.
#[test]
fn the_role_an_earlier_run_found_is_fetched_without_waiting_for_the_listing() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listing = "/latest/meta-data/iam/security-credentials/";
    let credentials = "/latest/meta-data/iam/security-credentials/SSMCore";
    let state = common::private_dir("state");
    let sources = "deb REPO/debian bookworm main\n";

    // Nothing recorded: the credentials wait for the listing, whose answer
    // waits out its 0.5 s.
    let watch = fake_aws::ImdsWatch::holding_listing_for("SSMCore");
    let site = rt.block_on(site_watched(true, 0, watch.clone()));
    let (first, code) = run_ec2_in(&site, sources, &state);
    assert_eq!(code, Some(0), "{first:#}");
    assert!(watch.listing_waited_out.load(Ordering::Relaxed));

    // The first run recorded: its role's credentials are asked for at once.
    common::record_run(&state, &first);
    let watch = fake_aws::ImdsWatch::holding_listing_for("SSMCore");
    let site = rt.block_on(site_watched(true, 0, watch.clone()));
    let (json, code) = run_ec2_in(&site, sources, &state);
    assert_eq!(code, Some(0), "{json:#}");
    assert!(
        !watch.listing_waited_out.load(Ordering::Relaxed),
        "the credentials were asked for only after the listing: {:?}",
        watch.requests.lock().unwrap()
    );
    assert_eq!(
        watch.gets(listing),
        1,
        "the role is still listed and judged"
    );
    assert_eq!(check(&json, "credentials.role")["status"], "pass");
    assert_eq!(check(&json, "credentials.valid")["status"], "pass");
    assert!(watch.gets(credentials) >= 1);
}

/// A role that changed since the recorded run costs one request, no
/// verdict: the credentials come by the name the listing gives.
#[test]
fn a_role_that_changed_since_the_recorded_run_is_listed_and_used() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let state = common::private_dir("state");
    let sources = "deb REPO/debian bookworm main\n";
    let watch: Arc<fake_aws::ImdsWatch> = Arc::default();
    let site = rt.block_on(site_watched(true, 0, watch.clone()));
    let (first, _) = run_ec2_in(&site, sources, &state);
    // The recorded run found another role, since detached.
    let mut earlier = first.clone();
    for c in earlier["checks"].as_array_mut().unwrap() {
        if c["id"] == "credentials.role" {
            c["details"]["role"] = "OldRole".into();
        }
    }
    common::record_run(&state, &earlier);
    watch.requests.lock().unwrap().clear();
    let (json, code) = run_ec2_in(&site, sources, &state);
    assert_eq!(code, Some(0), "{json:#}");
    assert_eq!(
        watch.gets("/latest/meta-data/iam/security-credentials/OldRole"),
        1,
        "{:?}",
        watch.requests.lock().unwrap()
    );
    let role = check(&json, "credentials.role");
    assert_eq!(role["status"], "pass", "{role:#}");
    assert_eq!(role["details"]["role"], "SSMCore");
    let valid = check(&json, "credentials.valid");
    assert_eq!(valid["status"], "pass", "{valid:#}");
    assert!(valid["summary"]
        .as_str()
        .unwrap()
        .contains("assumed-role/SSMCore/"));
}

#[test]
fn a_skewed_clock_a_missing_tag_and_a_broken_repository() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let site = rt.block_on(site(false, -400));
    let (json, code) = run_ec2(
        &site,
        "deb REPO/debian bookworm main\ndeb REPO/gone stable main\n",
    );
    let clock = check(&json, "clock.sync");
    assert_eq!(clock["status"], "fail", "{clock:#}");
    assert!(
        clock["summary"]
            .as_str()
            .unwrap()
            .contains("ahead of localhost's (its HTTP Date); SigV4 rejects"),
        "{clock:#}"
    );
    // STS's clock is as far off as the ssm endpoint's: it refuses the signature.
    let valid = check(&json, "credentials.valid");
    assert_eq!(valid["status"], "fail", "{valid:#}");
    assert!(
        valid["summary"]
            .as_str()
            .unwrap()
            .contains("its clock is off: STS answered SignatureDoesNotMatch: Signature expired"),
        "{valid:#}"
    );
    let tag = check(&json, "patchgroup.tag");
    assert_eq!(tag["status"], "warn");
    assert!(
        tag["summary"]
            .as_str()
            .unwrap()
            .contains("ec2:DescribeTags: ec2:DescribeTags answered UnauthorizedOperation"),
        "{tag:#}"
    );
    let repo = check(&json, "repo.reachable");
    assert_eq!(repo["status"], "fail");
    assert!(
        repo["summary"]
            .as_str()
            .unwrap()
            .contains("1 of 2 repositories do not answer"),
        "{repo:#}"
    );
    assert!(
        repo["summary"]
            .as_str()
            .unwrap()
            .contains("/gone/dists/stable/Release: HTTP 404"),
        "InRelease then Release: {repo:#}"
    );
    assert_eq!(code, Some(2));
}

#[test]
fn expired_credentials_are_refused_by_sts() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut site = rt.block_on(site(true, 0));
    let (url, calls) = rt.block_on(sts(fake_aws::StsAnswer::Expired));
    site.sts = url;
    let (json, code) = run_ec2(&site, "deb REPO/debian bookworm main\n");
    let valid = check(&json, "credentials.valid");
    assert_eq!(valid["status"], "fail", "{valid:#}");
    assert!(
        valid["summary"]
            .as_str()
            .unwrap()
            .contains("have expired: STS answered ExpiredToken: The security token included in the request is expired"),
        "{valid:#}"
    );
    assert!(valid["remedy"]
        .as_str()
        .unwrap()
        .contains("sudo systemctl restart amazon-ssm-agent"));
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    assert_eq!(code, Some(2));
}

#[test]
fn local_mode_contacts_nothing() {
    // Every address the checks could reach is a listener that nobody
    // accepts on: a connection would complete in the kernel's backlog and
    // show up in accept(). After the run, every backlog must be empty
    // (issue #17 item 10): zero connections, not just five skips.
    let listen = || {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        l
    };
    let mut watched: Vec<(String, std::net::TcpListener)> = Vec::new();
    let mut config = String::from("[endpoints.urls]\n");
    for service in ["ssm", "ssmmessages", "ec2messages", "s3", "ec2", "sts"] {
        let l = listen();
        config.push_str(&format!(
            "{service} = \"https://localhost:{}\"\n",
            l.local_addr().unwrap().port()
        ));
        watched.push((service.to_string(), l));
    }
    let imds = listen();
    let proxy = listen();
    let repo = listen();
    let env_ssm = listen();
    let root = common::fixture_root("debian12-clean");
    common::install_agent_binary(root.path());
    std::fs::create_dir_all(root.path().join("etc/apt")).unwrap();
    std::fs::write(
        root.path().join("etc/apt/sources.list"),
        format!(
            "deb http://{}/debian bookworm main\n",
            repo.local_addr().unwrap()
        ),
    )
    .unwrap();
    let config_file = root.path().join("preflight.toml");
    std::fs::write(&config_file, config).unwrap();
    let out = common::command(
        root.path(),
        &config_file,
        &["check", "--json", "--mode", "local"],
    )
    .env_remove("AWS_EC2_METADATA_DISABLED")
    .env(
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        format!("http://{}", imds.local_addr().unwrap()),
    )
    .env(
        "AWS_ENDPOINT_URL_SSM",
        format!("http://{}", env_ssm.local_addr().unwrap()),
    )
    .env(
        "HTTPS_PROXY",
        format!("http://{}", proxy.local_addr().unwrap()),
    )
    .env(
        "HTTP_PROXY",
        format!("http://{}", proxy.local_addr().unwrap()),
    )
    .env("AWS_ACCESS_KEY_ID", "AKIDLOCALMODE")
    .env("AWS_SECRET_ACCESS_KEY", "local-mode-secret")
    .env("AWS_REGION", "eu-west-1")
    .output()
    .unwrap();
    watched.push(("IMDS".into(), imds));
    watched.push(("the proxy".into(), proxy));
    watched.push(("the apt repository".into(), repo));
    watched.push(("AWS_ENDPOINT_URL_SSM".into(), env_ssm));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let mut contacted = Vec::new();
    for (what, listener) in &watched {
        let mut n = 0;
        while listener.accept().is_ok() {
            n += 1;
        }
        if n > 0 {
            contacted.push(format!("{what}: {n} connection(s)"));
        }
    }
    assert!(
        contacted.is_empty(),
        "local mode made connections: {contacted:?}"
    );
    for id in [
        "agent.identity",
        "credentials.role",
        "endpoint.ssm",
        "repo.reachable",
        "patchgroup.tag",
    ] {
        assert_eq!(check(&json, id)["status"], "skip", "{id}");
    }
}

#[tokio::test]
async fn imds_refused_and_imds_silent_are_told_apart() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Refused: a port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let client = identity::imds_client(Some(&format!("http://{closed}"))).unwrap();
    let refused = match identity::from_imds(&client).await {
        Err(identity::IdentityError::Failed { what, .. }) => what,
        other => panic!("{other:?}"),
    };
    assert!(refused.contains("refused"), "{refused}");
    // Silent: accepts and never answers.
    let (l, addr) = fake_aws::listener().await;
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = l.accept().await {
            held.push(tcp);
        }
    });
    let client = identity::imds_client(Some(&format!("http://{addr}"))).unwrap();
    let silent = match identity::from_imds(&client).await {
        Err(identity::IdentityError::Failed { what, .. }) => what,
        other => panic!("{other:?}"),
    };
    assert!(
        silent.contains("timed out") || silent.contains("timeout"),
        "{silent}"
    );
    assert_ne!(refused, silent);
    for what in [&refused, &silent] {
        assert!(what.contains(" ms: "), "the time it took: {what}");
    }
}

#[test]
fn the_clock_says_why_its_skew_could_not_be_measured() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let root = common::fixture_root("debian12-clean");
    let config = root.path().join("clock.toml");
    std::fs::write(
        &config,
        format!("[aws]\nregion = \"eu-west-1\"\n[endpoints.urls]\nssm = \"https://127.0.0.1:{closed}\"\n"),
    )
    .unwrap();
    let out = common::run_with_config(
        root.path(),
        &config,
        &["check", "--json", "--mode", "ec2", "--only", "clock.sync"],
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    let clock = &json["checks"][0];
    let summary = clock["summary"].as_str().unwrap();
    assert!(summary.contains("systemd cannot be asked"), "{summary}");
    assert!(
        summary.contains(&format!("the skew against SSM could not be measured: the ssm endpoint did not answer (127.0.0.1:{closed} refused the connection)")),
        "{summary}"
    );
}
