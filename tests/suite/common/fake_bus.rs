//! A private `dbus-daemon` (a system-type bus on a socket in a temporary
//! directory) and fakes of `org.freedesktop.systemd1` and
//! `org.freedesktop.timedate1` served on it with zbus: the real protocol,
//! systemd's method names, property types, `NoSuchUnit` error and
//! object-path escaping.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use zbus::object_server::ObjectServer;
use zbus::zvariant::OwnedObjectPath;

pub struct PrivateBus {
    child: Child,
    pub address: String,
    _dir: tempfile::TempDir,
}

impl PrivateBus {
    pub fn start() -> PrivateBus {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("system_bus_socket");
        let config = dir.path().join("bus.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"#,
                socket.display()
            ),
        )
        .unwrap();
        let mut child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon is needed for the D-Bus tests (.ci/run installs the dbus-daemon package)");
        // The address is printed once the bus listens.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("unix:"), "dbus-daemon said {line:?}");
        PrivateBus {
            child,
            address: format!("unix:path={}", socket.display()),
            _dir: dir,
        }
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// systemd's `bus_label_escape`: every byte but ASCII letters (and digits
/// after the first) becomes `_xx` in lower-case hex.
pub fn escape_label(name: &str) -> String {
    if name.is_empty() {
        return "_".into();
    }
    let mut out = String::new();
    for (i, b) in name.bytes().enumerate() {
        if b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()) {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

pub fn unit_path(name: &str) -> OwnedObjectPath {
    OwnedObjectPath::try_from(format!(
        "/org/freedesktop/systemd1/unit/{}",
        escape_label(name)
    ))
    .unwrap()
}

#[derive(Debug, Clone)]
pub struct FakeUnit {
    pub load_state: &'static str,
    pub active_state: &'static str,
    pub sub_state: &'static str,
    pub active_enter_usec: u64,
    pub main_pid: u32,
    pub n_restarts: u32,
    pub next_elapse_usec: u64,
}

impl FakeUnit {
    pub fn service(
        active: &'static str,
        sub: &'static str,
        main_pid: u32,
        n_restarts: u32,
        active_enter_usec: u64,
    ) -> FakeUnit {
        FakeUnit {
            load_state: "loaded",
            active_state: active,
            sub_state: sub,
            active_enter_usec,
            main_pid,
            n_restarts,
            next_elapse_usec: 0,
        }
    }

    pub fn timer(next_elapse_usec: u64) -> FakeUnit {
        FakeUnit {
            load_state: "loaded",
            active_state: "active",
            sub_state: "waiting",
            active_enter_usec: 0,
            main_pid: 0,
            n_restarts: 0,
            next_elapse_usec,
        }
    }

    fn not_found() -> FakeUnit {
        FakeUnit {
            load_state: "not-found",
            active_state: "inactive",
            sub_state: "dead",
            active_enter_usec: 0,
            main_pid: 0,
            n_restarts: 0,
            next_elapse_usec: 0,
        }
    }
}

#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.freedesktop.systemd1")]
enum SystemdError {
    #[zbus(error)]
    ZBus(zbus::Error),
    NoSuchUnit(String),
}

struct Manager {
    units: Arc<HashMap<String, FakeUnit>>,
    /// Whether calls never return: a systemd that is wedged.
    hang: bool,
}

#[zbus::interface(name = "org.freedesktop.systemd1.Manager")]
impl Manager {
    /// Known only for units in memory: active ones, as in systemd.
    async fn get_unit(&self, name: String) -> Result<OwnedObjectPath, SystemdError> {
        if self.hang {
            std::future::pending::<()>().await;
        }
        match self.units.get(&name) {
            Some(u) if u.active_state != "inactive" => Ok(unit_path(&name)),
            _ => Err(SystemdError::NoSuchUnit(format!("Unit {name} not loaded."))),
        }
    }

    /// Loads any name; an unknown one comes back `not-found`.
    async fn load_unit(
        &self,
        name: String,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> Result<OwnedObjectPath, SystemdError> {
        let unit = self
            .units
            .get(&name)
            .cloned()
            .unwrap_or_else(FakeUnit::not_found);
        let path = unit_path(&name);
        serve_unit(server, &name, &unit).await?;
        Ok(path)
    }
}

struct Unit(FakeUnit, String);

#[zbus::interface(name = "org.freedesktop.systemd1.Unit")]
impl Unit {
    #[zbus(property)]
    fn id(&self) -> String {
        self.1.clone()
    }
    #[zbus(property)]
    fn load_state(&self) -> String {
        self.0.load_state.into()
    }
    #[zbus(property)]
    fn active_state(&self) -> String {
        self.0.active_state.into()
    }
    #[zbus(property)]
    fn sub_state(&self) -> String {
        self.0.sub_state.into()
    }
    #[zbus(property)]
    fn active_enter_timestamp(&self) -> u64 {
        self.0.active_enter_usec
    }
}

struct Service(FakeUnit);

#[zbus::interface(name = "org.freedesktop.systemd1.Service")]
impl Service {
    #[zbus(property, name = "MainPID")]
    fn main_pid(&self) -> u32 {
        self.0.main_pid
    }
    #[zbus(property, name = "NRestarts")]
    fn n_restarts(&self) -> u32 {
        self.0.n_restarts
    }
}

struct Timer(FakeUnit);

#[zbus::interface(name = "org.freedesktop.systemd1.Timer")]
impl Timer {
    #[zbus(property, name = "NextElapseUSecRealtime")]
    fn next_elapse(&self) -> u64 {
        self.0.next_elapse_usec
    }
}

async fn serve_unit(server: &ObjectServer, name: &str, unit: &FakeUnit) -> zbus::Result<()> {
    let path = unit_path(name);
    server
        .at(&path, Unit(unit.clone(), name.to_string()))
        .await?;
    if name.ends_with(".service") {
        server.at(&path, Service(unit.clone())).await?;
    } else if name.ends_with(".timer") {
        server.at(&path, Timer(unit.clone())).await?;
    }
    Ok(())
}

/// Serves a fake systemd with these units until the connection is dropped.
pub async fn serve_systemd(
    address: &str,
    units: &[(&str, FakeUnit)],
    hang: bool,
) -> zbus::Connection {
    let units: Arc<HashMap<String, FakeUnit>> = Arc::new(
        units
            .iter()
            .map(|(n, u)| (n.to_string(), u.clone()))
            .collect(),
    );
    let conn = zbus::connection::Builder::address(address)
        .unwrap()
        .serve_at(
            "/org/freedesktop/systemd1",
            Manager {
                units: units.clone(),
                hang,
            },
        )
        .unwrap()
        .name("org.freedesktop.systemd1")
        .unwrap()
        .build()
        .await
        .unwrap();
    for (name, unit) in units.iter() {
        serve_unit(conn.object_server(), name, unit).await.unwrap();
    }
    conn
}

struct Timedate {
    ntp: bool,
    synchronized: bool,
}

#[zbus::interface(name = "org.freedesktop.timedate1")]
impl Timedate {
    #[zbus(property, name = "NTP")]
    fn ntp(&self) -> bool {
        self.ntp
    }
    #[zbus(property, name = "NTPSynchronized")]
    fn ntp_synchronized(&self) -> bool {
        self.synchronized
    }
    #[zbus(property)]
    fn timezone(&self) -> String {
        "Etc/UTC".into()
    }
}

pub async fn serve_timedate(address: &str, ntp: bool, synchronized: bool) -> zbus::Connection {
    zbus::connection::Builder::address(address)
        .unwrap()
        .serve_at("/org/freedesktop/timedate1", Timedate { ntp, synchronized })
        .unwrap()
        .name("org.freedesktop.timedate1")
        .unwrap()
        .build()
        .await
        .unwrap()
}
