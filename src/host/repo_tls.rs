//! How the package manager talks TLS to a repository, as its own
//! configuration says: a CA bundle of its own (RHUI's
//! `/etc/pki/rhui/cdn.redhat.com-chain.crt`), a client certificate and key
//! (RHUI's entitlement), or no verification at all. A repository asked
//! without them is asked as the package manager never would: RHUI answers
//! an unknown issuer, then 403 (issue #27).
//!
//! yum/dnf: `sslcacert`, `sslclientcert`, `sslclientkey`, `sslverify` in a
//! `.repo` section, with `[main]` of `dnf.conf` (or `yum.conf`) as the
//! defaults. apt: `Acquire::https::<host>::{CaInfo,SslCert,SslKey,Verify-Peer}`
//! and the same without the host, from `apt.conf` and `apt.conf.d`.

use crate::host::Root;
use std::collections::BTreeMap;

/// One TLS setting and where it is written, for messages that name both.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Setting {
    /// The file it names, as written (a host path).
    pub path: String,
    /// The option, as the package manager spells it (`sslclientkey`,
    /// `Acquire::https::CaInfo`).
    pub option: String,
    /// The configuration file that sets it.
    pub file: String,
}

impl Setting {
    /// "sslclientkey=/etc/pki/rhui/content-rhel9.key in /etc/yum.repos.d/redhat-rhui.repo"
    pub fn describe(&self) -> String {
        format!("{} {} (set in {})", self.option, self.path, self.file)
    }
}

/// A repository's TLS settings; the default is the system's trust and no
/// client certificate, with the server verified.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepoTls {
    /// Trusted instead of the system's roots (libcurl's CAINFO, which both
    /// yum/dnf and apt set from it).
    pub ca: Option<Setting>,
    pub client_cert: Option<Setting>,
    /// Without it the key is read from the certificate's file, as libcurl does.
    pub client_key: Option<Setting>,
    /// `sslverify=0`, `Verify-Peer "false"`: the server is not verified.
    pub verify: bool,
    /// An AWS RHUI repository: the `amazon-id` dnf plugin sends the
    /// instance's signed identity with each request (`X-RHUI-ID`,
    /// `X-RHUI-SIGNATURE`); the entitlement certificate alone gets 403.
    pub rhui_identity: bool,
}

impl Default for RepoTls {
    fn default() -> RepoTls {
        RepoTls {
            ca: None,
            client_cert: None,
            client_key: None,
            verify: true,
            rhui_identity: false,
        }
    }
}

impl RepoTls {
    /// Whether the system's trust stands, as for any other HTTPS request.
    pub fn is_default(&self) -> bool {
        *self == RepoTls::default()
    }

    /// From a yum/dnf `.repo` section's keys, over `[main]`'s.
    pub fn from_rpm_md(
        keys: &BTreeMap<String, String>,
        file: &str,
        main: &BTreeMap<String, String>,
        main_file: &str,
    ) -> RepoTls {
        let setting = |option: &str| {
            let (value, from) = match keys.get(option) {
                Some(v) => (v, file),
                None => (main.get(option)?, main_file),
            };
            let value = value.trim();
            (!value.is_empty()).then(|| Setting {
                path: value.to_string(),
                option: option.to_string(),
                file: from.to_string(),
            })
        };
        let verify = keys
            .get("sslverify")
            .or_else(|| main.get("sslverify"))
            .is_none_or(|v| !is_false(v));
        RepoTls {
            ca: setting("sslcacert"),
            client_cert: setting("sslclientcert"),
            client_key: setting("sslclientkey"),
            verify,
            rhui_identity: false,
        }
    }
}

fn is_false(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "0" | "false" | "no" | "off"
    )
}

/// Whether a yum/dnf repository is AWS RHUI's, as the `amazon-id` plugin
/// decides it: `rhui` in its ID, or RHUI's host in its URL.
pub fn is_aws_rhui(id: &str, url: &str) -> bool {
    id.contains("rhui") || url.contains(".aws.ce.redhat.com")
}

/// The `[main]` section of dnf's configuration (or yum's, on a host
/// without dnf), and the file it came from.
pub fn rpm_main(root: &Root) -> (BTreeMap<String, String>, String) {
    for file in ["/etc/dnf/dnf.conf", "/etc/yum.conf"] {
        if let Ok(text) = std::fs::read_to_string(root.path(file)) {
            let main = crate::host::ini::ini_sections(&text)
                .into_iter()
                .find(|(name, _)| name == "main")
                .map(|(_, keys)| keys)
                .unwrap_or_default();
            return (main, file.to_string());
        }
    }
    (BTreeMap::new(), String::new())
}

/// apt's booleans (its `StringToBool`): yes/no, true/false, on/off,
/// with/without, enable/disable, 1/0.
pub fn apt_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "with" | "enable" | "1" => Some(true),
        "no" | "false" | "off" | "without" | "disable" | "0" => Some(false),
        _ => None,
    }
}

/// The suffixes of apt.conf.d files apt does not read.
const IGNORED: &[&str] = &[
    ".dpkg-old",
    ".dpkg-dist",
    ".dpkg-new",
    ".dpkg-tmp",
    ".ucf-old",
    ".ucf-dist",
    ".ucf-new",
    ".save",
    ".orig",
    ".disabled",
    ".distUpgrade",
];

/// apt's configuration, flattened: `acquire::https::host::cainfo` (keys
/// lowercased, as apt compares them) to the value and the file setting it.
#[derive(Debug, Default)]
pub struct AptConf(BTreeMap<String, (String, String)>);

impl AptConf {
    /// `apt.conf`, then `apt.conf.d` in the order apt reads it.
    pub fn read(root: &Root) -> AptConf {
        let mut files = vec!["/etc/apt/apt.conf".to_string()];
        let mut parts: Vec<String> = std::fs::read_dir(root.path("/etc/apt/apt.conf.d"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    // apt skips names with other characters, and the
                    // leftovers its Dir::Ignore-Files-Silently lists.
                    .filter(|n| {
                        n.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
                            && !IGNORED.iter().any(|suffix| n.ends_with(suffix))
                    })
                    .collect()
            })
            .unwrap_or_default();
        parts.sort();
        files.extend(
            parts
                .into_iter()
                .map(|n| format!("/etc/apt/apt.conf.d/{n}")),
        );
        let mut conf = AptConf::default();
        for file in files {
            if let Ok(text) = std::fs::read_to_string(root.path(&file)) {
                conf.parse(&text, &file);
            }
        }
        conf
    }

    /// Reads apt's syntax: `A::B "v";`, `A { B "v"; };`, comments `//`,
    /// `/* */` and `#`. Written here: no crate parses apt.conf, and only
    /// scalar values are needed (lists are read as their last value).
    pub fn parse(&mut self, text: &str, file: &str) {
        let mut scope: Vec<String> = Vec::new();
        let mut key = String::new();
        let text = strip_comments(text);
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => {
                    let value: String = chars.by_ref().take_while(|c| *c != '"').collect();
                    let name = key.trim();
                    if !name.is_empty() {
                        let mut full = scope.clone();
                        full.push(name.to_string());
                        self.0.insert(
                            full.join("::").to_ascii_lowercase(),
                            (value, file.to_string()),
                        );
                    }
                }
                '{' => {
                    scope.push(key.trim().to_string());
                    key.clear();
                }
                '}' => {
                    scope.pop();
                    key.clear();
                }
                ';' => key.clear(),
                c => key.push(c),
            }
        }
    }

    fn get(&self, key: &str) -> Option<&(String, String)> {
        self.0.get(&key.to_ascii_lowercase())
    }

    /// A boolean option, as apt reads it; `None`: not set (or no boolean).
    pub fn flag(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(|(v, _)| apt_bool(v))
    }

    /// The TLS settings apt uses for `host`: its own, else the global ones.
    pub fn tls_for(&self, host: &str) -> RepoTls {
        let setting = |name: &str| {
            [
                format!("Acquire::https::{host}::{name}"),
                format!("Acquire::https::{name}"),
            ]
            .into_iter()
            .find_map(|option| {
                let (path, file) = self.get(&option)?;
                Some(Setting {
                    path: path.clone(),
                    option,
                    file: file.clone(),
                })
            })
        };
        // A switch, not a file: its `path` holds the value.
        let verify = setting("Verify-Peer").is_none_or(|s| !is_false(&s.path));
        RepoTls {
            ca: setting("CaInfo"),
            client_cert: setting("SslCert"),
            client_key: setting("SslKey"),
            verify,
            rhui_identity: false,
        }
    }
}

/// `text` without `//`, `#` and `/* */` comments, outside quotes.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            quoted = c != '"';
            out.push(c);
            continue;
        }
        match c {
            '"' => {
                quoted = true;
                out.push(c);
            }
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rhui_repositories_carry_their_ca_and_entitlement() {
        let text = "[rhel-9-baseos-rhui-rpms]\nmirrorlist=https://rhui.example/pulp/mirror/$basearch\nsslverify=1\nsslcacert=/etc/pki/rhui/cdn.redhat.com-chain.crt\nsslclientcert=/etc/pki/rhui/product/content-rhel9.crt\nsslclientkey=/etc/pki/rhui/content-rhel9.key\n";
        let (_, keys) = crate::host::ini::ini_sections(text).remove(0);
        let tls = RepoTls::from_rpm_md(
            &keys,
            "/etc/yum.repos.d/redhat-rhui.repo",
            &BTreeMap::new(),
            "",
        );
        assert!(tls.verify);
        assert_eq!(
            tls.ca.as_ref().unwrap().path,
            "/etc/pki/rhui/cdn.redhat.com-chain.crt"
        );
        assert_eq!(
            tls.client_key.unwrap().describe(),
            "sslclientkey /etc/pki/rhui/content-rhel9.key (set in /etc/yum.repos.d/redhat-rhui.repo)"
        );
        // [main] supplies what a section leaves out; the section wins.
        let main: BTreeMap<String, String> = [
            ("sslverify".to_string(), "False".to_string()),
            ("sslcacert".to_string(), "/etc/pki/main-ca.pem".to_string()),
        ]
        .into();
        let plain = RepoTls::from_rpm_md(
            &BTreeMap::new(),
            "/etc/yum.repos.d/a.repo",
            &main,
            "/etc/dnf/dnf.conf",
        );
        assert!(!plain.verify);
        assert_eq!(plain.ca.unwrap().file, "/etc/dnf/dnf.conf");
        let own = RepoTls::from_rpm_md(
            &keys,
            "/etc/yum.repos.d/redhat-rhui.repo",
            &main,
            "/etc/dnf/dnf.conf",
        );
        assert!(own.verify);
        assert_eq!(own.ca.unwrap().file, "/etc/yum.repos.d/redhat-rhui.repo");
        assert!(RepoTls::from_rpm_md(&BTreeMap::new(), "a", &BTreeMap::new(), "").is_default());
    }

    #[test]
    fn apt_reads_per_host_settings_over_global_ones_in_either_syntax() {
        let mut conf = AptConf::default();
        conf.parse(
            "// a comment\nAcquire::https::CaInfo \"/etc/ssl/global.pem\"; # another\n/* block\n comment */\nAcquire::https::repo.example.com::SslCert \"/etc/apt/client.crt\";\n",
            "/etc/apt/apt.conf.d/50tls",
        );
        conf.parse(
            "Acquire {\n  https {\n    repo.example.com {\n      SslKey \"/etc/apt/client.key\";\n      Verify-Peer \"false\";\n    };\n  };\n};\n",
            "/etc/apt/apt.conf.d/60nested",
        );
        let tls = conf.tls_for("repo.example.com");
        assert_eq!(tls.ca.as_ref().unwrap().path, "/etc/ssl/global.pem");
        assert_eq!(tls.ca.unwrap().option, "Acquire::https::CaInfo");
        assert_eq!(tls.client_cert.unwrap().path, "/etc/apt/client.crt");
        let key = tls.client_key.unwrap();
        assert_eq!(
            (key.path.as_str(), key.file.as_str()),
            ("/etc/apt/client.key", "/etc/apt/apt.conf.d/60nested")
        );
        assert!(!tls.verify);
        // Another host: the global CA only, verified.
        let other = conf.tls_for("deb.debian.org");
        assert!(other.verify && other.client_cert.is_none() && other.ca.is_some());
    }
}
