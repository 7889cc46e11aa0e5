//! The package repositories a patch run downloads from: read from apt
//! sources (one-line `.list` and deb822 `.sources`), yum/dnf `.repo` files
//! and zypper `.repo` files, and each enabled one's index fetched the way the
//! package manager would (`InRelease`, `repodata/repomd.xml`, the mirror list).

use crate::host::ini::ini_sections;
use crate::host::repo_tls::{apt_bool, AptConf, RepoTls};
use crate::host::Root;
use std::collections::BTreeMap;

/// One repository to ask, or one that cannot be asked and why.
// A host lists a handful of repositories: boxing the TLS settings would
// save nothing worth an indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repo {
    Fetch {
        /// `apt: http://deb.debian.org/debian bookworm`, `dnf: amzn2023-core`.
        name: String,
        /// The file it is configured in.
        file: String,
        /// The URL fetched; for apt, `Release` is tried when `InRelease` is 404.
        index: String,
        /// `mirrorlist` / `metalink` when the URL is a list of mirrors, not a repository.
        list_kind: Option<&'static str>,
        /// How the package manager talks TLS to it (the mirror list too).
        tls: RepoTls,
        /// The keys its index and packages must be signed with.
        keys: Keys,
    },
    Skip {
        name: String,
        file: String,
        why: String,
    },
}

/// The keys a repository must be signed with, as its file says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Keys {
    /// Not said (tests, and the rare repository type without keys).
    #[default]
    Unsaid,
    /// apt's `Signed-By`: keyring files, fingerprints or an inline key
    /// block; `None`: the trusted keyrings (`trusted.gpg`, `trusted.gpg.d`).
    /// `check_valid_until`: whether apt refuses a `Release` past its
    /// `Valid-Until` (the source's `check-valid-until`, else apt.conf's
    /// `Acquire::Check-Valid-Until`; `None`: neither says, so it does).
    /// `trusted`: `trusted=yes`, which has apt take the source signed or
    /// not (a local mirror's usual setting).
    Apt {
        signed_by: Option<String>,
        check_valid_until: Option<bool>,
        trusted: bool,
        /// `allow-insecure=yes` (else apt.conf's
        /// `Acquire::AllowInsecureRepositories`): apt takes the source
        /// unsigned, with a warning.
        allow_insecure: Option<bool>,
    },
    /// yum/dnf/zypper: `gpgcheck` and `repo_gpgcheck` (here or in
    /// `[main]`), and the `gpgkey=` URLs.
    Rpm {
        gpgcheck: bool,
        repo_gpgcheck: bool,
        gpgkey: Vec<String>,
    },
}

/// Whether this host's rpm verifies with Sequoia (rpm-sequoia: RHEL 10,
/// Fedora 38 and later), which refuses what an expired key signed; the
/// older built-in verifier ignores key expiry.
pub fn rpm_uses_sequoia(root: &Root) -> bool {
    [
        "/usr/lib64",
        "/usr/lib",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
    ]
    .iter()
    .filter_map(|dir| std::fs::read_dir(root.path(dir)).ok())
    .flat_map(|d| d.flatten())
    .any(|e| {
        e.file_name()
            .to_string_lossy()
            .starts_with("librpm_sequoia.so")
    })
}

impl Repo {
    /// A repository that is not asked, and why.
    pub fn skip(name: String, file: &str, why: impl Into<String>) -> Repo {
        Repo::Skip {
            name,
            file: file.into(),
            why: why.into(),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Repo::Fetch { name, .. } | Repo::Skip { name, .. } => name,
        }
    }
}

fn list_dir(root: &Root, dir: &str, suffix: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(root.path(dir))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(suffix))
                .map(|n| format!("{dir}/{n}"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn local_url(url: &str) -> bool {
    ["file:", "cdrom:", "copy:", "dir:", "iso:", "hd:", "plugin:"]
        .iter()
        .any(|p| url.starts_with(p))
}

/// The repositories configured on the host, and the files that list
/// repositories but could not be read (with why): an unread file is not
/// "every repository answers" (issue #17).
#[derive(Debug, Default)]
pub struct Configured {
    pub repos: Vec<Repo>,
    pub unreadable: Vec<String>,
}

/// Whether a repository here can name the instance's region: only
/// yum, dnf and zypper `.repo` files do (`$awsregion`, `$awsdomain`,
/// RHUI's `REGION`); apt's sources never. A check reading only apt's
/// then need not wait for the identity to learn it.
pub fn may_name_the_region(root: &Root) -> bool {
    !list_dir(root, "/etc/yum.repos.d", ".repo").is_empty()
        || !list_dir(root, "/etc/zypp/repos.d", ".repo").is_empty()
}

/// Every repository configured on the host, apt, yum/dnf and zypper alike.
pub fn configured(root: &Root, vars: &BTreeMap<String, String>) -> Configured {
    type Parse<'a> = Box<dyn Fn(&str, &str) -> Vec<Repo> + 'a>;
    let mut out = Configured::default();
    let (main, main_file) = crate::host::repo_tls::rpm_main(root);
    let mut apt_files = vec!["/etc/apt/sources.list".to_string()];
    apt_files.extend(list_dir(root, "/etc/apt/sources.list.d", ".list"));
    let sources: Vec<(Vec<String>, Parse)> = vec![
        (apt_files, Box::new(apt_one_line)),
        (
            list_dir(root, "/etc/apt/sources.list.d", ".sources"),
            Box::new(apt_deb822),
        ),
        (
            list_dir(root, "/etc/yum.repos.d", ".repo"),
            Box::new(|text, file| {
                rpm_md_repos(text, file, "dnf", vars, Some((&main, main_file.as_str())))
            }),
        ),
        (
            list_dir(root, "/etc/zypp/repos.d", ".repo"),
            Box::new(|text, file| rpm_md_repos(text, file, "zypper", vars, None)),
        ),
    ];
    for (files, parse) in sources {
        for file in files {
            match std::fs::read_to_string(root.path(&file)) {
                Ok(text) => out.repos.extend(parse(&text, &file)),
                // sources.list may well be absent (deb822-only hosts).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => out.unreadable.push(format!("{file} ({e})")),
            }
        }
    }
    // apt's TLS settings are per host, in its own configuration.
    let apt_conf = AptConf::read(root);
    let valid_until = apt_conf.flag("Acquire::Check-Valid-Until");
    let insecure = apt_conf.flag("Acquire::AllowInsecureRepositories");
    for r in &mut out.repos {
        if let Repo::Fetch {
            name,
            index,
            tls,
            keys,
            ..
        } = r
        {
            if let (true, Some(host)) = (name.starts_with("apt: "), https_host(index)) {
                *tls = apt_conf.tls_for(&host);
            }
            if let Keys::Apt {
                check_valid_until,
                allow_insecure,
                ..
            } = keys
            {
                *check_valid_until = check_valid_until.or(valid_until);
                *allow_insecure = allow_insecure.or(insecure);
            }
        }
    }
    // The same index listed twice (deb and deb-src) is asked once.
    let mut seen = std::collections::HashSet::new();
    out.repos.retain(|r| match r {
        Repo::Fetch { index, .. } => seen.insert(index.clone()),
        Repo::Skip { .. } => true,
    });
    out
}

/// The host of an `https://` URL (no port, no user).
fn https_host(url: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).ok()?;
    (url.scheme() == "https")
        .then(|| url.host_str().map(str::to_string))
        .flatten()
}

/// `<uri>/dists/<suite>/InRelease`, or `<uri>/<suite>/InRelease` for a flat repository.
fn apt_index(uri: &str, suite: &str) -> String {
    let uri = uri.trim_end_matches('/');
    if suite.ends_with('/') {
        let suite = suite.trim_start_matches("./").trim_end_matches('/');
        if suite.is_empty() || suite == "." {
            format!("{uri}/InRelease")
        } else {
            format!("{uri}/{suite}/InRelease")
        }
    } else {
        format!("{uri}/dists/{suite}/InRelease")
    }
}

fn apt_repo(uri: &str, suite: &str, file: &str, keys: Keys) -> Repo {
    // A source's URI may carry `user:password@`: never in its name.
    let name = format!("apt: {} {suite}", crate::text::redact_url(uri));
    if local_url(uri) {
        return Repo::skip(name, file, "a local source, nothing to reach");
    }
    if !(uri.starts_with("http://") || uri.starts_with("https://")) {
        return Repo::skip(name, file, "not an http(s) source");
    }
    Repo::Fetch {
        name,
        file: file.into(),
        index: apt_index(uri, suite),
        list_kind: None,
        tls: RepoTls::default(),
        keys,
    }
}

/// `deb [options] uri suite [components…]` lines.
pub fn apt_one_line(text: &str, file: &str) -> Vec<Repo> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next()?.trim();
            let rest = line
                .strip_prefix("deb-src ")
                .or_else(|| line.strip_prefix("deb "))?
                .trim();
            let (options, rest) = match rest.strip_prefix('[') {
                Some(r) => r.split_once(']')?,
                None => ("", rest),
            };
            let option = |name: &str| {
                options
                    .split_whitespace()
                    .find_map(|o| o.strip_prefix(name)?.strip_prefix('='))
                    .map(str::to_string)
            };
            let keys = Keys::Apt {
                signed_by: option("signed-by"),
                check_valid_until: option("check-valid-until").and_then(|v| apt_bool(&v)),
                trusted: option("trusted").and_then(|v| apt_bool(&v)) == Some(true),
                allow_insecure: option("allow-insecure").and_then(|v| apt_bool(&v)),
            };
            let mut fields = rest.split_whitespace();
            let uri = fields.next()?;
            let suite = fields.next()?;
            Some(apt_repo(uri, suite, file, keys))
        })
        .collect()
}

/// deb822 stanzas: `Types`, `URIs`, `Suites`, `Enabled`.
pub fn apt_deb822(text: &str, file: &str) -> Vec<Repo> {
    let mut repos = Vec::new();
    for stanza in text.split("\n\n") {
        let mut fields: BTreeMap<String, String> = BTreeMap::new();
        let mut last: Option<String> = None;
        for line in stanza.lines() {
            if line.starts_with('#') {
                continue;
            }
            if line.starts_with(' ') || line.starts_with('\t') {
                // Lines kept as lines: an inline Signed-By key is armor,
                // whose empty lines deb822 writes as ` .`.
                if let Some(k) = &last {
                    let v: &mut String = fields.entry(k.clone()).or_default();
                    v.push('\n');
                    let line = line.trim();
                    v.push_str(if line == "." { "" } else { line });
                }
                continue;
            }
            if let Some((k, v)) = line.split_once(':') {
                let k = k.trim().to_ascii_lowercase();
                fields.insert(k.clone(), v.trim().to_string());
                last = Some(k);
            }
        }
        if fields
            .get("enabled")
            .is_some_and(|v| v.eq_ignore_ascii_case("no"))
        {
            continue;
        }
        let (Some(uris), Some(suites)) = (fields.get("uris"), fields.get("suites")) else {
            continue;
        };
        let keys = Keys::Apt {
            signed_by: fields
                .get("signed-by")
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty()),
            check_valid_until: fields.get("check-valid-until").and_then(|v| apt_bool(v)),
            trusted: fields.get("trusted").and_then(|v| apt_bool(v)) == Some(true),
            allow_insecure: fields.get("allow-insecure").and_then(|v| apt_bool(v)),
        };
        for uri in uris.split_whitespace() {
            for suite in suites.split_whitespace() {
                repos.push(apt_repo(uri, suite, file, keys.clone()));
            }
        }
    }
    repos
}

/// `$releasever`, `${basearch}` and the like; `Err` names what is not set.
pub fn expand(text: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {text}"))?;
            (&braced[..end], &braced[end + 1..])
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        let value = vars.get(name).ok_or_else(|| format!("${name}"))?;
        out.push_str(value);
        rest = tail;
    }
    out.push_str(rest);
    Ok(out)
}

/// INI-style `.repo` files (yum, dnf and zypper share the shape). `main`:
/// yum/dnf's `[main]` and its file, whose TLS settings are the defaults
/// (zypper keeps its TLS settings elsewhere: None).
pub fn rpm_md_repos(
    text: &str,
    file: &str,
    tool: &str,
    vars: &BTreeMap<String, String>,
    main: Option<(&BTreeMap<String, String>, &str)>,
) -> Vec<Repo> {
    let mut repos = Vec::new();
    for (id, keys) in ini_sections(text) {
        let enabled = keys
            .get("enabled")
            .is_none_or(|v| !matches!(v.trim(), "0" | "false" | "no"));
        if !enabled {
            continue;
        }
        let name = format!("{tool}: {id}");
        let (url, list_kind) = if let Some(u) = keys.get("baseurl") {
            (
                u.split([' ', ','])
                    .find(|s| !s.is_empty())
                    .unwrap_or_default()
                    .to_string(),
                None,
            )
        } else if let Some(u) = keys.get("metalink") {
            (u.clone(), Some("metalink"))
        } else if let Some(u) = keys.get("mirrorlist") {
            (u.clone(), Some("mirrorlist"))
        } else {
            repos.push(Repo::skip(name, file, "no baseurl, mirrorlist or metalink"));
            continue;
        };
        if let Some(t @ ("yast2" | "plaindir")) = keys.get("type").map(String::as_str) {
            repos.push(Repo::skip(
                name,
                file,
                format!("type {t} is not an rpm-md repository"),
            ));
            continue;
        }
        let rhui = tool == "dnf" && crate::host::repo_tls::is_aws_rhui(&id, &url);
        let url = match fetchable_url(&url, rhui, vars) {
            Ok(url) => url,
            Err(why) => {
                repos.push(Repo::skip(name, file, why));
                continue;
            }
        };
        let index = match list_kind {
            Some(_) => url,
            None => format!(
                "{}/repodata/repomd.xml",
                url.split('?').next().unwrap_or(&url).trim_end_matches('/')
            ),
        };
        let mut tls = match main {
            Some((main, main_file)) => RepoTls::from_rpm_md(&keys, file, main, main_file),
            None => RepoTls::default(),
        };
        tls.rhui_identity = rhui;
        let keys = rpm_keys(&keys, main.map(|(m, _)| m), tool == "zypper");
        repos.push(Repo::Fetch {
            name,
            file: file.into(),
            index,
            list_kind,
            tls,
            keys,
        });
    }
    repos
}

/// A `.repo` section's signature settings, `[main]`'s as defaults
/// (`gpgkey=` lists URLs separated by spaces, commas or lines). zypper
/// checks package signatures unless told not to; dnf and yum only when
/// `gpgcheck` says so (distributions set it in dnf.conf / yum.conf).
fn rpm_keys(
    keys: &BTreeMap<String, String>,
    main: Option<&BTreeMap<String, String>>,
    zypper: bool,
) -> Keys {
    let set = |option: &str| {
        keys.get(option)
            .or_else(|| main.and_then(|m| m.get(option)))
            .map(|v| matches!(v.trim(), "1" | "true" | "yes" | "True" | "on"))
    };
    let on = |option: &str| set(option).unwrap_or(false);
    Keys::Rpm {
        gpgcheck: set("gpgcheck").unwrap_or(zypper),
        repo_gpgcheck: on("repo_gpgcheck"),
        gpgkey: keys
            .get("gpgkey")
            .map(|v| {
                v.split([' ', ',', '\n', '\t'])
                    .filter(|u| !u.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// A `.repo` URL with its variables set, or why it is not asked.
fn fetchable_url(url: &str, rhui: bool, vars: &BTreeMap<String, String>) -> Result<String, String> {
    // RHUI's URLs carry a literal REGION, which the amazon-id plugin
    // replaces with the instance's region.
    let url = match (rhui && url.contains("REGION"), vars.get("awsregion")) {
        (true, Some(region)) => url.replace("REGION", region),
        (true, None) => return Err(format!("{url} names the instance's REGION, which is not known here (local mode, or no identity)")),
        (false, _) => url.to_string(),
    };
    let url = expand(&url, vars).map_err(|var| {
        format!("its URL uses {var}, which is not set here (/etc/dnf/vars, /etc/yum/vars)")
    })?;
    if url.starts_with("plugin:") {
        // SUSE's cloud update infrastructure: the plugin asks the region's
        // update servers with the instance's identity, which only zypper
        // can do.
        return Err(format!("{url} is served by a zypper service plugin (SUSE's cloud update infrastructure), which only zypper can ask: `sudo zypper refresh` checks it"));
    }
    if local_url(&url) {
        return Err(format!("{url} is local, nothing to reach"));
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("{url} is not an http(s) URL"));
    }
    Ok(url)
}

/// The values yum and dnf substitute in `.repo` files, as this host sets
/// them: `/etc/dnf/vars` and `/etc/yum/vars` files, `$basearch`, and
/// `$releasever` from os-release when no vars file sets it.
pub fn repo_vars(root: &Root, region: Option<&str>) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    let arch = std::env::consts::ARCH.to_string();
    vars.insert("basearch".into(), arch.clone());
    vars.insert("arch".into(), arch);
    if let Ok(Some((os, _))) = crate::host::os_release::OsRelease::read(root) {
        let release = if os.id == "amzn" {
            os.version_id.clone()
        } else {
            os.version_id
                .split('.')
                .next()
                .unwrap_or_default()
                .to_string()
        };
        vars.insert("releasever".into(), release);
        vars.insert(
            "releasever_major".into(),
            os.version_id
                .split('.')
                .next()
                .unwrap_or_default()
                .to_string(),
        );
    }
    if let Some(region) = region {
        vars.insert("awsregion".into(), region.to_string());
        let domain = if region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        vars.insert("awsdomain".into(), domain.into());
    }
    for dir in ["/etc/yum/vars", "/etc/dnf/vars"] {
        if let Ok(entries) = std::fs::read_dir(root.path(dir)) {
            for e in entries.flatten() {
                if let Ok(value) = std::fs::read_to_string(e.path()) {
                    vars.insert(
                        e.file_name().to_string_lossy().into_owned(),
                        value.trim().to_string(),
                    );
                }
            }
        }
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apt_sources_over_https_carry_apt_s_tls_settings_for_their_host() {
        let dir = tempfile::tempdir().unwrap();
        let write = |path: &str, text: &str| {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        write(
            "etc/apt/sources.list",
            "deb https://repo.example.com/debian bookworm main\ndeb http://deb.debian.org/debian bookworm main\n",
        );
        write(
            "etc/apt/apt.conf.d/80client-cert",
            "Acquire::https::repo.example.com::SslCert \"/etc/apt/client.crt\";\nAcquire::https::repo.example.com::SslKey \"/etc/apt/client.key\";\n",
        );
        // A dpkg leftover is not read by apt, nor here.
        write(
            "etc/apt/apt.conf.d/80client-cert.dpkg-old",
            "Acquire::https::Verify-Peer \"false\";\n",
        );
        let found = configured(&Root::new(dir.path()), &BTreeMap::new());
        let tls: Vec<&RepoTls> = found
            .repos
            .iter()
            .filter_map(|r| match r {
                Repo::Fetch { tls, .. } => Some(tls),
                _ => None,
            })
            .collect();
        assert_eq!(tls.len(), 2);
        assert_eq!(
            tls[0].client_cert.as_ref().unwrap().path,
            "/etc/apt/client.crt"
        );
        assert_eq!(
            tls[0].client_key.as_ref().unwrap().file,
            "/etc/apt/apt.conf.d/80client-cert"
        );
        assert!(tls[0].verify);
        assert!(tls[1].is_default(), "plain http: {:?}", tls[1]);
    }

    #[test]
    fn apt_one_line_sources() {
        let text = "\
deb http://deb.debian.org/debian bookworm main contrib
deb-src http://deb.debian.org/debian bookworm main
# deb http://disabled.example/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] https://repo.example.com/apt stable main
deb file:/srv/mirror ./
deb https://flat.example.com/repo ./
";
        let repos = apt_one_line(text, "/etc/apt/sources.list");
        let indexes: Vec<String> = repos
            .iter()
            .filter_map(|r| match r {
                Repo::Fetch { index, .. } => Some(index.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            indexes,
            [
                "http://deb.debian.org/debian/dists/bookworm/InRelease",
                "http://deb.debian.org/debian/dists/bookworm/InRelease",
                "https://repo.example.com/apt/dists/stable/InRelease",
                "https://flat.example.com/repo/InRelease",
            ]
        );
        assert!(matches!(&repos[3], Repo::Skip { why, .. } if why.contains("local")));
    }

    #[test]
    fn apt_deb822_sources() {
        let text = "\
Types: deb deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.debian.org/debian-security
Suites: bookworm-security
Enabled: no
";
        let repos = apt_deb822(text, "/etc/apt/sources.list.d/debian.sources");
        assert_eq!(repos.len(), 2);
        assert!(
            matches!(&repos[1], Repo::Fetch { index, .. } if index == "http://deb.debian.org/debian/dists/bookworm-updates/InRelease")
        );
    }

    #[test]
    fn yum_repos_with_variables_and_mirror_lists() {
        let text = "\
[amazonlinux]
name=Amazon Linux 2023 repository
mirrorlist=https://al2023-repos-$awsregion-de612dc2.s3.dualstack.$awsregion.$awsdomain/core/mirrors/$releasever/$basearch/mirror.list
enabled=1

[epel]
baseurl=https://mirror.example.com/epel/$releasever/Everything/$basearch/
        https://backup.example.com/epel/$releasever/
enabled = 1

[disabled]
baseurl=https://nowhere.example.com/
enabled=0

[needs-var]
baseurl=https://x.example.com/$contentdir/
";
        let mut vars = BTreeMap::new();
        vars.insert("awsregion".to_string(), "eu-west-1".to_string());
        vars.insert("awsdomain".to_string(), "amazonaws.com".to_string());
        vars.insert("releasever".to_string(), "2023.6.20241212".to_string());
        vars.insert("basearch".to_string(), "x86_64".to_string());
        let repos = rpm_md_repos(text, "/etc/yum.repos.d/a.repo", "dnf", &vars, None);
        assert_eq!(repos.len(), 3);
        assert_eq!(
            repos[0],
            Repo::Fetch {
                name: "dnf: amazonlinux".into(),
                file: "/etc/yum.repos.d/a.repo".into(),
                index: "https://al2023-repos-eu-west-1-de612dc2.s3.dualstack.eu-west-1.amazonaws.com/core/mirrors/2023.6.20241212/x86_64/mirror.list".into(),
                list_kind: Some("mirrorlist"),
                tls: RepoTls::default(),
                keys: Keys::Rpm {
                    gpgcheck: false,
                    repo_gpgcheck: false,
                    gpgkey: Vec::new(),
                },
            }
        );
        assert!(
            matches!(&repos[1], Repo::Fetch { index, .. } if index == "https://mirror.example.com/epel/2023.6.20241212/Everything/x86_64/repodata/repomd.xml")
        );
        assert!(matches!(&repos[2], Repo::Skip { why, .. } if why.contains("$contentdir")));
    }

    #[test]
    fn zypper_repos() {
        let text = "\
[SLE-Module-Basesystem15-SP5-Pool]
name=SLE-Module-Basesystem15-SP5-Pool
enabled=1
autorefresh=0
baseurl=plugin:/susecloud?credentials=Basesystem_Module_15_SP5_x86_64&path=/repo/SUSE/
type=rpm-md

[opensuse-oss]
enabled=1
baseurl=http://download.opensuse.org/distribution/leap/15.6/repo/oss/
type=rpm-md
";
        let repos = rpm_md_repos(
            text,
            "/etc/zypp/repos.d/x.repo",
            "zypper",
            &BTreeMap::new(),
            None,
        );
        assert!(matches!(&repos[0], Repo::Skip { why, .. } if why.contains("plugin")));
        assert!(
            matches!(&repos[1], Repo::Fetch { index, .. } if index == "http://download.opensuse.org/distribution/leap/15.6/repo/oss/repodata/repomd.xml")
        );
        // zypper checks package signatures unless told not to.
        assert!(
            matches!(
                &repos[1],
                Repo::Fetch {
                    keys: Keys::Rpm { gpgcheck: true, .. },
                    ..
                }
            ),
            "{:?}",
            repos[1]
        );
    }

    #[test]
    fn expansion() {
        let mut vars = BTreeMap::new();
        vars.insert("basearch".to_string(), "aarch64".to_string());
        assert_eq!(
            expand("a/${basearch}/$basearch-x", &vars).unwrap(),
            "a/aarch64/aarch64-x"
        );
        assert_eq!(expand("a/$nope/", &vars).unwrap_err(), "$nope");
    }

    fn keys_of(repo: &Repo) -> &Keys {
        match repo {
            Repo::Fetch { keys, .. } => keys,
            Repo::Skip { .. } => panic!("skipped: {repo:?}"),
        }
    }

    #[test]
    fn rpm_with_sequoia_is_told_by_its_library() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        std::fs::create_dir_all(dir.path().join("usr/lib64")).unwrap();
        std::fs::write(dir.path().join("usr/lib64/librpmio.so.10"), "").unwrap();
        assert!(!rpm_uses_sequoia(&root));
        std::fs::write(dir.path().join("usr/lib64/librpm_sequoia.so.1"), "").unwrap();
        assert!(rpm_uses_sequoia(&root));
    }

    #[test]
    fn each_source_carries_the_keys_it_must_be_signed_with() {
        let one_line = apt_one_line(
            "deb [arch=amd64 signed-by=/etc/apt/keyrings/x.gpg check-valid-until=no] https://x.example.com/apt stable main\ndeb http://deb.debian.org/debian bookworm main\ndeb [trusted=yes] http://mirror.internal/local ./\n",
            "/etc/apt/sources.list",
        );
        assert_eq!(
            keys_of(&one_line[0]),
            &Keys::Apt {
                signed_by: Some("/etc/apt/keyrings/x.gpg".into()),
                check_valid_until: Some(false),
                trusted: false,
                allow_insecure: None
            }
        );
        assert_eq!(
            keys_of(&one_line[1]),
            &Keys::Apt {
                signed_by: None,
                check_valid_until: None,
                trusted: false,
                allow_insecure: None
            }
        );
        assert!(matches!(
            keys_of(&one_line[2]),
            Keys::Apt { trusted: true, .. }
        ));
        // A password in a source's URI is never in its name.
        let private = apt_one_line(
            "deb https://ci:s3cret@apt.example.com/x stable main\n",
            "/etc/apt/sources.list",
        );
        assert_eq!(
            private[0].name(),
            "apt: https://ci:***@apt.example.com/x stable"
        );
        // An inline key keeps its lines, ` .` an empty one.
        let deb822 = apt_deb822(
            "Types: deb\nURIs: https://y.example.com/apt\nSuites: stable\nSigned-By: -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n mDMEaVW5gBYJKwYBBAHaRw8BAQdA\n -----END PGP PUBLIC KEY BLOCK-----\n",
            "/etc/apt/sources.list.d/y.sources",
        );
        assert_eq!(
            keys_of(&deb822[0]),
            &Keys::Apt {
                signed_by: Some("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEaVW5gBYJKwYBBAHaRw8BAQdA\n-----END PGP PUBLIC KEY BLOCK-----".into()),
                check_valid_until: None,
                trusted: false,
                allow_insecure: None
            }
        );
        let mut main = BTreeMap::new();
        main.insert("gpgcheck".to_string(), "1".to_string());
        let rpm = rpm_md_repos(
            "[epel]\nbaseurl=https://e.example.com/9/\nrepo_gpgcheck=1\ngpgkey=file:///etc/pki/rpm-gpg/A,\n  file:///etc/pki/rpm-gpg/B\n[nocheck]\nbaseurl=https://n.example.com/\ngpgcheck=0\n",
            "/etc/yum.repos.d/e.repo",
            "dnf",
            &BTreeMap::new(),
            Some((&main, "/etc/dnf/dnf.conf")),
        );
        assert_eq!(
            keys_of(&rpm[0]),
            &Keys::Rpm {
                gpgcheck: true,
                repo_gpgcheck: true,
                gpgkey: vec![
                    "file:///etc/pki/rpm-gpg/A".into(),
                    "file:///etc/pki/rpm-gpg/B".into()
                ],
            }
        );
        assert!(matches!(
            keys_of(&rpm[1]),
            Keys::Rpm {
                gpgcheck: false,
                ..
            }
        ));
    }

    #[test]
    fn only_repo_files_can_name_the_region() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let write = |path: &str| {
            let file = dir.path().join(path.trim_start_matches('/'));
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, "").unwrap();
        };
        write("/etc/apt/sources.list");
        write("/etc/apt/sources.list.d/extra.sources");
        write("/etc/yum.repos.d/README");
        assert!(!may_name_the_region(&root), "apt's sources and a README");
        write("/etc/zypp/repos.d/sles.repo");
        assert!(may_name_the_region(&root));
    }
}
