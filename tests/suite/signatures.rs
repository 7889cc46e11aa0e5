//! `repo.signature` against the referee (issue #27, item 2): apt
//! repositories served on loopback, signed by keys made here with gpg (one
//! expired, made at a faked time; one the host does not have; one good; one
//! that expires in ten days; two good but past their `Valid-Until`, one of
//! them with `check-valid-until=no`; three unsigned, one `trusted=yes`
//! and one `allow-insecure=yes`; two signed with SHA-1 only, one
//! `allow-weak=yes`), and the
//! check's verdict on each compared with what the real `apt-get update`
//! decides in the same tree.

use crate::common;
use crate::common::signed_repo::{repository, serve_dir, Gpg};
use std::path::Path;
use std::process::Command;

const DAY: i64 = 86_400;

/// `repo.signature`'s result on the tree at `root` (ec2 mode: it skips
/// in local mode; IMDS off, so the region is simply unknown).
fn signature_check(root: &Path) -> serde_json::Value {
    let config = root.join("preflight.toml");
    std::fs::write(&config, "[repos]\ntimeout = \"5s\"\n").unwrap();
    let args = [
        "check",
        "--json",
        "--mode",
        "ec2",
        "--only",
        "repo.signature",
    ];
    let out = common::command(root, &config, &args)
        .env("NO_PROXY", "127.0.0.1")
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    json["checks"][0].clone()
}

/// What the real `apt-get update` in `root` says of each source: the base
/// URLs it refused. No lock taken (Debug::NoLocking), nothing outside the
/// tree written (every Dir in it), run as root without the _apt sandbox.
fn apt_refuses(root: &Path) -> (Vec<String>, String) {
    // The tree's apt configuration alone: APT_CONFIG is read before
    // anything, and its Dir moves apt.conf.d into the tree too.
    let conf = root.join("etc/apt/apt.conf");
    std::fs::write(&conf, format!("Dir \"{}/\";\n", root.display())).unwrap();
    let d = |p: &str| format!("{}/{p}", root.display());
    for dir in [
        "etc/apt/apt.conf.d",
        "var/lib/apt/lists/partial",
        "var/cache/apt/archives/partial",
        "var/lib/dpkg",
    ] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    let out = Command::new("apt-get")
        .arg("update")
        .args([
            "-o",
            &format!("Dir::State::status={}", d("var/lib/dpkg/status")),
        ])
        .args(["-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=root"])
        .args([
            "-o",
            "Acquire::Languages=none",
            "-o",
            "APT::Architectures=amd64",
        ])
        .args([
            "-o",
            "Acquire::http::Proxy::127.0.0.1=DIRECT",
            "-o",
            "Acquire::Retries=0",
        ])
        .env("APT_CONFIG", &conf)
        .env("LC_ALL", "C")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .expect("apt-get");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // apt names a refused source on a `W: GPG error: URL`, `E: The
    // repository 'URL` or `E: Release file for URL` line.
    let refused = said
        .lines()
        .filter_map(|l| {
            l.strip_prefix("W: GPG error: ")
                .or_else(|| l.strip_prefix("E: The repository '"))
                .or_else(|| l.strip_prefix("E: Release file for "))
        })
        // The source's URI: `Release file for` names the index's URL.
        .map(|rest| {
            let url = rest.split_whitespace().next().unwrap_or_default();
            url.split("/dists/")
                .next()
                .unwrap_or(url)
                .trim_end_matches('/')
                .to_string()
        })
        .collect();
    (refused, said)
}

#[test]
fn each_verdict_is_the_one_apt_gets_itself() {
    let now = jiff::Timestamp::now().as_second();
    let gpg = Gpg::new();
    // Made 400 days ago for a year: expired 35 days ago.
    let expired = gpg.key("expired@repo.test", now - 400 * DAY, "1y");
    let unknown = gpg.key("unknown@repo.test", now - DAY, "2y");
    let good = gpg.key("good@repo.test", now - 30 * DAY, "2y");
    let soon = gpg.key("soon@repo.test", now - DAY, "11d");

    let served = tempfile::tempdir().unwrap();
    repository(
        &gpg,
        served.path(),
        "expired",
        "stable",
        &expired,
        now - 300 * DAY,
        None,
    );
    repository(
        &gpg,
        served.path(),
        "unknown",
        "stable",
        &unknown,
        now - DAY,
        None,
    );
    repository(
        &gpg,
        served.path(),
        "good",
        "stable",
        &good,
        now - DAY,
        None,
    );
    repository(
        &gpg,
        served.path(),
        "soon",
        "stable",
        &soon,
        now - DAY,
        None,
    );
    repository(
        &gpg,
        served.path(),
        "stale",
        "stable",
        &good,
        now - 10 * DAY,
        Some(now - DAY),
    );
    repository(
        &gpg,
        served.path(),
        "stale-ok",
        "stable",
        &good,
        now - 10 * DAY,
        Some(now - DAY),
    );
    // Two with no signature at all (a Release, no InRelease, no
    // Release.gpg), one of them `trusted=yes` as local mirrors often are.
    for name in ["unsigned", "local", "insecure"] {
        repository(&gpg, served.path(), name, "stable", &good, now - DAY, None);
        std::fs::remove_file(served.path().join(name).join("dists/stable/InRelease")).unwrap();
    }
    // Two signed with SHA-1 only, one of them `allow-weak=yes`.
    for name in ["weak", "weak-ok"] {
        repository(&gpg, served.path(), name, "stable", &good, now - DAY, None);
        let dist = served.path().join(name).join("dists/stable");
        std::fs::remove_file(dist.join("InRelease")).unwrap();
        gpg.clearsign_with(&good, now - DAY, &dist, "SHA1");
    }
    let (addr, _rt) = serve_dir(served.path().to_path_buf());
    let url = |name: &str| format!("http://{addr}/{name}");

    let root = tempfile::tempdir().unwrap();
    let apt = root.path().join("etc/apt");
    std::fs::create_dir_all(apt.join("trusted.gpg.d")).unwrap();
    std::fs::create_dir_all(apt.join("sources.list.d")).unwrap();
    // `good` (and `stale`) from the trusted keyrings; `unknown`'s key is
    // nowhere; `soon` inline in a deb822 source.
    std::fs::write(apt.join("trusted.gpg.d/good.asc"), gpg.export(&good, true)).unwrap();
    // Signed-By names an absolute path, which the real apt reads from the
    // machine and the check from its root: the keyring is at that path in
    // both.
    let keys = tempfile::tempdir().unwrap();
    let expired_ring = keys.path().join("expired.gpg");
    std::fs::write(&expired_ring, gpg.export(&expired, false)).unwrap();
    let inside = root.path().join(expired_ring.strip_prefix("/").unwrap());
    std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
    std::fs::copy(&expired_ring, &inside).unwrap();
    std::fs::write(
        apt.join("sources.list"),
        format!(
            "deb [signed-by={}] {} stable main\ndeb {} stable main\ndeb {} stable main\ndeb {} stable main\ndeb [check-valid-until=no] {} stable main\ndeb {} stable main\ndeb [trusted=yes] {} stable main\ndeb [allow-insecure=yes] {} stable main\ndeb {} stable main\ndeb [allow-weak=yes] {} stable main\n",
            expired_ring.display(),
            url("expired"),
            url("unknown"),
            url("good"),
            url("stale"),
            url("stale-ok"),
            url("unsigned"),
            url("local"),
            url("insecure"),
            url("weak"),
            url("weak-ok"),
        ),
    )
    .unwrap();
    let inline: String = String::from_utf8(gpg.export(&soon, true))
        .unwrap()
        .lines()
        .map(|l| {
            if l.is_empty() {
                " .\n".to_string()
            } else {
                format!(" {l}\n")
            }
        })
        .collect();
    std::fs::write(
        apt.join("sources.list.d/soon.sources"),
        format!(
            "Types: deb\nURIs: {}\nSuites: stable\nComponents: main\nSigned-By:\n{inline}",
            url("soon")
        ),
    )
    .unwrap();

    let check = &signature_check(root.path());
    let detail = |name: &str| -> String {
        let key = format!("repo.apt: {} stable", url(name));
        check["details"][&key]
            .as_str()
            .unwrap_or_else(|| panic!("no {key} in {check:#}"))
            .to_string()
    };

    let (refused, said) = apt_refuses(root.path());
    for name in [
        "expired", "unknown", "good", "soon", "stale", "stale-ok", "unsigned", "local", "insecure",
        "weak", "weak-ok",
    ] {
        let ours = detail(name).starts_with("refused:");
        let apts = refused.contains(&url(name));
        assert_eq!(
            ours,
            apts,
            "{name}: we say {:?}, apt says:\n{said}",
            detail(name)
        );
    }
    // And each for the reason apt gives.
    // The expired key named by its whole fingerprint and the day it expired.
    let expired_on = jiff::Timestamp::from_second(now - 400 * DAY + 365 * DAY)
        .unwrap()
        .strftime("%Y-%m-%d")
        .to_string();
    assert!(
        detail("expired").starts_with(&format!("refused: signed by key {expired} (expired@repo.test <expired@repo.test>), which expired on {expired_on} (EXPKEYSIG)")) && said.contains("EXPKEYSIG"),
        "{}",
        detail("expired")
    );
    assert!(
        detail("unknown").contains("NO_PUBKEY") && said.contains("NO_PUBKEY"),
        "{}",
        detail("unknown")
    );
    assert!(
        detail("good").starts_with(&format!(
            "signed by key {good} (good@repo.test <good@repo.test>), valid until "
        )),
        "{}",
        detail("good")
    );
    assert!(
        detail("soon").starts_with("expires soon: signed by key"),
        "{}",
        detail("soon")
    );
    assert!(
        detail("soon").contains("(in 9 days") || detail("soon").contains("(in 10 days"),
        "{}",
        detail("soon")
    );
    assert!(
        detail("stale").contains("expired on") && detail("stale").contains("(Valid-Until)"),
        "{}",
        detail("stale")
    );
    assert!(
        detail("stale-ok").starts_with("signed by key"),
        "{}",
        detail("stale-ok")
    );
    assert!(
        detail("unsigned").starts_with("refused: it carries no signature"),
        "{}",
        detail("unsigned")
    );
    assert_eq!(
        detail("local"),
        "not checked: trusted=yes: apt takes it without verifying a signature"
    );
    assert_eq!(
        detail("insecure"),
        "not checked: it is unsigned, and allow-insecure lets apt take it with a warning"
    );
    // allow-weak does not make apt take a SHA-1 signature.
    for name in ["weak", "weak-ok"] {
        assert!(
            detail(name).contains("uses SHA-1 or weaker, which apt rejects")
                && said.contains(&format!("{}/{name} stable InRelease' is not signed", addr)),
            "{}",
            detail(name)
        );
    }
    assert_eq!(check["status"], "fail", "{check:#}");
    assert!(
        check["summary"]
            .as_str()
            .unwrap()
            .starts_with("6 of 11 repositories would be refused by the package manager: "),
        "{check:#}"
    );
}

/// An rpm-md repository at `served/<name>`: a `repomd.xml`, and its
/// detached armored signature by `fpr` when given.
fn rpm_repository(gpg: &Gpg, served: &Path, name: &str, fpr: Option<&str>) {
    let repodata = served.join(name).join("repodata");
    std::fs::create_dir_all(&repodata).unwrap();
    let repomd = repodata.join("repomd.xml");
    std::fs::write(&repomd, "<?xml version=\"1.0\"?>\n<repomd xmlns=\"http://linux.duke.edu/metadata/repo\"><revision>1</revision></repomd>\n").unwrap();
    if let Some(fpr) = fpr {
        let key = format!("{fpr}!");
        let asc = repodata.join("repomd.xml.asc").display().to_string();
        let file = repomd.display().to_string();
        gpg.run(
            None,
            &[
                "--local-user",
                &key,
                "--armor",
                "--detach-sign",
                "--output",
                &asc,
                &file,
            ],
        );
    }
}

#[test]
fn dnf_repositories_need_their_gpgkey_files_and_a_signed_repomd() {
    let now = jiff::Timestamp::now().as_second();
    let gpg = Gpg::new();
    let vendor = gpg.key("vendor@repo.test", now - DAY, "2y");
    let stranger = gpg.key("stranger@repo.test", now - DAY, "2y");
    let served = tempfile::tempdir().unwrap();
    rpm_repository(&gpg, served.path(), "signed", Some(&vendor));
    rpm_repository(&gpg, served.path(), "foreign", Some(&stranger));
    rpm_repository(&gpg, served.path(), "unsigned", None);
    rpm_repository(&gpg, served.path(), "keyless", None);
    let (addr, _rt) = serve_dir(served.path().to_path_buf());

    let root = tempfile::tempdir().unwrap();
    let keys = root.path().join("etc/pki/rpm-gpg");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(keys.join("RPM-GPG-KEY-vendor"), gpg.export(&vendor, true)).unwrap();
    let repos = root.path().join("etc/yum.repos.d");
    std::fs::create_dir_all(&repos).unwrap();
    let stanza = |id: &str, key: &str| {
        format!("[{id}]\nname={id}\nbaseurl=http://{addr}/{id}/\nenabled=1\ngpgcheck=1\nrepo_gpgcheck=1\ngpgkey=file:///etc/pki/rpm-gpg/{key}\n\n")
    };
    std::fs::write(
        repos.join("vendor.repo"),
        [
            stanza("signed", "RPM-GPG-KEY-vendor"),
            stanza("foreign", "RPM-GPG-KEY-vendor"),
            stanza("unsigned", "RPM-GPG-KEY-vendor"),
            stanza("keyless", "RPM-GPG-KEY-gone"),
        ]
        .concat(),
    )
    .unwrap();
    let check = &signature_check(root.path());
    let detail = |id: &str| {
        check["details"][&format!("repo.dnf: {id}")]
            .as_str()
            .unwrap_or_else(|| panic!("no {id} in {check:#}"))
            .to_string()
    };
    assert!(
        detail("signed").starts_with(&format!(
            "keys: key {vendor} (vendor@repo.test <vendor@repo.test>) until "
        )),
        "{}",
        detail("signed")
    );
    assert!(detail("foreign").starts_with("refused: repo_gpgcheck=1, and repomd.xml.asc does not verify with its gpgkey keys: signed by key ") && detail("foreign").contains("NO_PUBKEY"), "{}", detail("foreign"));
    assert!(
        detail("unsigned").contains("publishes no ")
            && detail("unsigned").contains("/unsigned/repodata/repomd.xml.asc"),
        "{}",
        detail("unsigned")
    );
    assert_eq!(detail("keyless"), "refused: its gpgkey /etc/pki/rpm-gpg/RPM-GPG-KEY-gone does not exist: the patch run cannot import the key, and dnf refuses the packages");
    assert_eq!(check["status"], "fail", "{check:#}");
}
