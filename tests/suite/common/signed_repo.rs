//! Signed apt repositories made at test time: keys from gpg in a private
//! home (at a faked time when a test needs an old one), `Release` files
//! clear-signed into `InRelease`, served from a directory over loopback
//! HTTP as a mirror serves them.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A private GnuPG home; its agent is stopped when the test ends, passed
/// or not.
pub struct Gpg {
    home: tempfile::TempDir,
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.home.path())
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

impl Gpg {
    pub fn new() -> Gpg {
        let home = tempfile::tempdir().unwrap();
        Gpg { home }
    }

    /// gpg in this home, its clock at `at` (Unix seconds) when given.
    pub fn run(&self, at: Option<i64>, args: &[&str]) -> Vec<u8> {
        let mut cmd = Command::new("gpg");
        cmd.arg("--homedir").arg(self.home.path()).args([
            "--batch",
            "--quiet",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
        ]);
        if let Some(t) = at {
            cmd.arg("--faked-system-time").arg(format!("{t}!"));
        }
        let out = cmd
            .args(args)
            .output()
            .expect("gpg (scripts/test installs gnupg)");
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// A signing key made at `made`, valid for `valid`; its fingerprint.
    pub fn key(&self, email: &str, made: i64, valid: &str) -> String {
        let uid = format!("{email} <{email}>");
        self.run(
            Some(made),
            &["--quick-gen-key", &uid, "ed25519", "sign", valid],
        );
        let listing =
            String::from_utf8(self.run(None, &["--with-colons", "--list-keys", email])).unwrap();
        listing
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .map(|l| l.trim_matches(':').to_string())
            .unwrap()
    }

    pub fn export(&self, fpr: &str, armor: bool) -> Vec<u8> {
        let mut args = vec!["--export"];
        if armor {
            args.push("--armor");
        }
        args.push(fpr);
        self.run(None, &args)
    }

    /// `dir/Release` clear-signed by `fpr` at `at` into `dir/InRelease`.
    pub fn clearsign(&self, fpr: &str, at: i64, dir: &Path) {
        self.clearsign_with(fpr, at, dir, "SHA512");
    }

    /// `InRelease` in `dir` signed with `digest` (SHA1: a weak signature).
    pub fn clearsign_with(&self, fpr: &str, at: i64, dir: &Path, digest: &str) {
        let key = format!("{fpr}!");
        let out = dir.join("InRelease").display().to_string();
        let release = dir.join("Release").display().to_string();
        self.run(
            Some(at),
            &[
                "--local-user",
                &key,
                "--digest-algo",
                digest,
                "--clearsign",
                "--output",
                &out,
                &release,
            ],
        );
    }
}

fn rfc2822(t: i64) -> String {
    jiff::Timestamp::from_second(t)
        .unwrap()
        .strftime("%a, %d %b %Y %H:%M:%S UTC")
        .to_string()
}

/// A repository at `served/<name>` for `suite`: an empty package list for
/// amd64, and a `Release` dated `date` (with `Valid-Until` when given),
/// signed by `fpr` at `date`.
pub fn repository(
    gpg: &Gpg,
    served: &Path,
    name: &str,
    suite: &str,
    fpr: &str,
    date: i64,
    until: Option<i64>,
) {
    let dist = served.join(name).join("dists").join(suite);
    std::fs::create_dir_all(dist.join("main/binary-amd64")).unwrap();
    std::fs::write(dist.join("main/binary-amd64/Packages"), "").unwrap();
    let mut release = format!(
        "Origin: {name}\nLabel: {name}\nSuite: {suite}\nCodename: {suite}\nDate: {}\n",
        rfc2822(date)
    );
    if let Some(u) = until {
        release += &format!("Valid-Until: {}\n", rfc2822(u));
    }
    // The SHA-256 of nothing.
    release += "Architectures: amd64\nComponents: main\nSHA256:\n e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 0 main/binary-amd64/Packages\n";
    std::fs::write(dist.join("Release"), release).unwrap();
    gpg.clearsign(fpr, date, &dist);
}

/// Serves the files under `dir` on a loopback port (404 for the rest).
pub fn serve_dir(dir: PathBuf) -> (std::net::SocketAddr, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (listener, addr) = rt.block_on(super::fake_aws::listener());
    rt.spawn(serve_files(listener, dir));
    (addr, rt)
}

/// Serves the files under `dir` on `listener`, plain HTTP, as a static
/// repository mirror does (404 for the rest).
pub async fn serve_files(listener: tokio::net::TcpListener, dir: PathBuf) {
    use http_body_util::Full;
    use hyper::body::Bytes;
    {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let dir = dir.clone();
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let path = req.uri().path().trim_start_matches('/').to_string();
                    let file = (!path.contains("..")).then(|| dir.join(&path));
                    let body = file.and_then(|f| std::fs::read(f).ok());
                    async move {
                        let response = match body {
                            Some(b) => hyper::Response::new(Full::new(Bytes::from(b))),
                            None => hyper::Response::builder()
                                .status(404)
                                .body(Full::new(Bytes::new()))
                                .unwrap(),
                        };
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
            tokio::spawn(super::fake_aws::serve_one(tcp, None, service));
        }
    }
}

/// A healthy Debian mirror: `debian/dists/bookworm` signed by a key made
/// now; the key (armored) goes into the host's `trusted.gpg.d`.
pub struct GoodMirror {
    pub served: tempfile::TempDir,
    pub key: Vec<u8>,
    _gpg: Gpg,
}

impl GoodMirror {
    pub fn new() -> GoodMirror {
        let now = jiff::Timestamp::now().as_second();
        let gpg = Gpg::new();
        let fpr = gpg.key("mirror@repo.test", now - 86_400, "2y");
        let served = tempfile::tempdir().unwrap();
        repository(
            &gpg,
            served.path(),
            "debian",
            "bookworm",
            &fpr,
            now - 3600,
            None,
        );
        GoodMirror {
            served,
            key: gpg.export(&fpr, true),
            _gpg: gpg,
        }
    }

    /// Trusts the mirror's key in the tree at `root`, as a distribution's
    /// keyring package does.
    pub fn trust_in(&self, root: &Path) {
        let dir = root.join("etc/apt/trusted.gpg.d");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("mirror.asc"), &self.key).unwrap();
    }
}
