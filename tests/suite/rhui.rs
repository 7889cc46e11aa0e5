//! RHEL on EC2 (issue #27, item 1): the repositories are served by Red Hat
//! Update Infrastructure, which has its own CA, wants the entitlement
//! certificate and, on AWS, the instance's signed identity in two headers
//! (the `amazon-id` plugin's). A loopback server that answers as RHUI does:
//! a TLS certificate from its own CA, 403 without the client certificate or
//! without the identity, the mirror list with both.

use crate::common::{self, fake_aws};
use fake_aws::{ImdsData, TestCa};
use std::sync::Arc;

const INSTANCE: &str = "i-0rhel000000000001";

/// Serves RHUI's mirror lists on `listener` over TLS with `config`.
async fn serve_rhui(listener: tokio::net::TcpListener, config: Arc<rustls::ServerConfig>) {
    use http_body_util::Full;
    use hyper::body::Bytes;
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let entitled = tls.get_ref().1.peer_certificates().is_some();
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    // The identity document, URL-safe base64, must name the
                    // instance; the signature must be there.
                    let identity = req
                        .headers()
                        .get("x-rhui-id")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| {
                            aws_smithy_types::base64::decode(v.replace('-', "+").replace('_', "/"))
                                .ok()
                        })
                        .is_some_and(|doc| String::from_utf8_lossy(&doc).contains(INSTANCE))
                        && req.headers().contains_key("x-rhui-signature");
                    let path = req.uri().path().to_string();
                    let (status, body) = if !entitled || !identity {
                        (403, "Forbidden".to_string())
                    } else if path.starts_with("/eu-west-1/pulp/mirror/content/dist/rhel9/rhui/9/")
                    {
                        (200, format!("https://localhost{path}\n"))
                    } else {
                        (404, "Not Found".to_string())
                    };
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from(body)))
                                .unwrap(),
                        )
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
        });
    }
}

struct Rhui {
    root: tempfile::TempDir,
    imds: String,
    /// Trusted by the "system": not RHUI's CA.
    system: TestCa,
    _rt: tokio::runtime::Runtime,
}

/// The fixture RHEL 9 root with RHUI's files, pointed at a loopback RHUI.
fn rhui() -> Rhui {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server_ca = TestCa::new("RHUI CA");
    let entitlement_ca = TestCa::new("RHUI entitlement CA");
    let (imds, port) = rt.block_on(async {
        let (l, addr) = fake_aws::listener().await;
        tokio::spawn(fake_aws::start_imds(
            l,
            ImdsData {
                instance_id: INSTANCE.into(),
                region: "eu-west-1".into(),
                role: None,
                tags: None,
            },
        ));
        let (l, rhui_addr) = fake_aws::listener().await;
        tokio::spawn(serve_rhui(
            l,
            server_ca.server_config_asking(&["localhost"], &entitlement_ca),
        ));
        (format!("http://{addr}"), rhui_addr.port())
    });
    let root = common::fixture_root("rhel9-rhui");
    let repo = root.path().join("etc/yum.repos.d/redhat-rhui.repo");
    let text = std::fs::read_to_string(&repo).unwrap();
    // RHUI's host becomes the loopback server; REGION stays in the path, so
    // the server sees what the plugin would make of it.
    std::fs::write(
        &repo,
        text.replace(
            "rhui.REGION.aws.ce.redhat.com",
            &format!("localhost:{port}/REGION"),
        ),
    )
    .unwrap();
    let pki = root.path().join("etc/pki/rhui");
    std::fs::create_dir_all(pki.join("product")).unwrap();
    std::fs::write(pki.join("cdn.redhat.com-chain.crt"), server_ca.pem()).unwrap();
    let (cert, key) = entitlement_ca.issue("rhel-9-rhui-entitlement");
    std::fs::write(pki.join("product/content-rhel9.crt"), cert).unwrap();
    std::fs::write(pki.join("content-rhel9.key"), key).unwrap();
    Rhui {
        root,
        imds,
        system: TestCa::new("the system's roots"),
        _rt: rt,
    }
}

fn repo_check(r: &Rhui) -> serde_json::Value {
    repo_check_with(r, "[repos]\ntimeout = \"3s\"\n", true)
}

/// `repo.reachable` in ec2 mode on the tree, IMDS on (the fake) or off.
fn repo_check_with(r: &Rhui, config_text: &str, imds: bool) -> serde_json::Value {
    let config = r.root.path().join("preflight.toml");
    std::fs::write(&config, config_text).unwrap();
    let mut cmd = common::command(
        r.root.path(),
        &config,
        &[
            "check",
            "--json",
            "--mode",
            "ec2",
            "--only",
            "repo.reachable",
        ],
    );
    if imds {
        cmd.env_remove("AWS_EC2_METADATA_DISABLED")
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &r.imds);
    }
    let out = cmd
        .env("SSL_CERT_FILE", &r.system.pem_path)
        .env_remove("SSL_CERT_DIR")
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "repo.reachable")
        .unwrap()
        .clone()
}

fn summary(c: &serde_json::Value) -> &str {
    c["summary"].as_str().unwrap()
}

#[test]
fn an_entitled_rhel_node_reaches_rhui_as_dnf_does() {
    let r = rhui();
    let c = repo_check(&r);
    assert_eq!(c["status"], "pass", "{c:#}");
    // The two enabled sections, each its mirror list (the debug one is off).
    assert!(
        summary(&c).starts_with("all 2 repositories answer"),
        "{c:#}"
    );
    assert!(
        c["details"]["repo.dnf: rhel-9-baseos-rhui-rpms"]
            .as_str()
            .unwrap()
            .starts_with("HTTP 200"),
        "{c:#}"
    );
    assert!(
        c["details"]["repo.dnf: rhel-9-appstream-rhui-rpms"]
            .as_str()
            .unwrap()
            .starts_with("HTTP 200"),
        "{c:#}"
    );
}

#[test]
fn without_the_repository_s_tls_settings_rhui_is_refused_as_dnf_would_be() {
    // What the check did before: the system's roots, no certificate. The
    // server is not trusted; with its CA alone, 403.
    let r = rhui();
    let repo = r.root.path().join("etc/yum.repos.d/redhat-rhui.repo");
    let text = std::fs::read_to_string(&repo).unwrap();
    let strip = |keep_ca: bool| {
        text.lines()
            .filter(|l| !(l.starts_with("sslclient") || (!keep_ca && l.starts_with("sslcacert"))))
            .collect::<Vec<_>>()
            .join("\n")
    };
    std::fs::write(&repo, strip(false)).unwrap();
    let c = repo_check(&r);
    assert_eq!(c["status"], "fail", "{c:#}");
    assert!(summary(&c).contains("UnknownIssuer"), "{c:#}");
    std::fs::write(&repo, strip(true)).unwrap();
    let c = repo_check(&r);
    assert_eq!(c["status"], "fail", "{c:#}");
    assert!(summary(&c).contains("HTTP 403"), "{c:#}");
    // sslverify=0 with the entitlement and no CA: dnf does not verify RHUI,
    // nor does the check.
    let unverified: String = text
        .lines()
        .filter(|l| !l.starts_with("sslcacert"))
        .map(|l| if l == "sslverify=1" { "sslverify=0" } else { l })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&repo, unverified).unwrap();
    let c = repo_check(&r);
    assert_eq!(c["status"], "pass", "{c:#}");
}

#[test]
fn a_missing_entitlement_key_fails_naming_the_file_and_the_setting() {
    let r = rhui();
    std::fs::remove_file(r.root.path().join("etc/pki/rhui/content-rhel9.key")).unwrap();
    let c = repo_check(&r);
    assert_eq!(c["status"], "fail", "{c:#}");
    assert!(
        summary(&c).starts_with("2 of 2 repositories cannot be used:")
            && summary(&c).contains(
                "sslclientkey /etc/pki/rhui/content-rhel9.key (set in /etc/yum.repos.d/redhat-rhui.repo)"
            ),
        "{c:#}"
    );
    assert!(c["remedy"]
        .as_str()
        .unwrap()
        .contains("sudo dnf reinstall rh-amazon-rhui-client"));
    // The key there but the CA bundle not PEM: named too.
    let r = rhui();
    std::fs::write(
        r.root.path().join("etc/pki/rhui/cdn.redhat.com-chain.crt"),
        "not a certificate\n",
    )
    .unwrap();
    let c = repo_check(&r);
    assert_eq!(c["status"], "fail", "{c:#}");
    assert!(
        summary(&c).contains("sslcacert /etc/pki/rhui/cdn.redhat.com-chain.crt"),
        "{c:#}"
    );
}

#[test]
fn without_imds_the_rhui_identity_is_not_read_and_the_check_says_so() {
    let r = rhui();
    let c = &repo_check_with(&r, "[aws]\nregion = \"eu-west-1\"\n", false);
    assert_eq!(c["status"], "warn", "{c:#}");
    assert!(
        summary(c).contains("0 of 2 repositories answer; 2 could not be asked")
            && summary(c).contains("AWS_EC2_METADATA_DISABLED"),
        "{c:#}"
    );
}
