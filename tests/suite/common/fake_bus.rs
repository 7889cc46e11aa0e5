//! A private `dbus-daemon` (a system-type bus on a socket in a temporary
//! directory) and fakes of `org.freedesktop.systemd1` and
//! `org.freedesktop.timedate1` served on it with zbus: the real protocol,
//! systemd's method names, property types, `NoSuchUnit` error and
//! object-path escaping.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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

    pub fn not_found() -> FakeUnit {
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

/// The units, shared between the manager and the unit objects so a test
/// can change one (an updater that finishes) and systemd's answers follow.
pub type Units = Arc<Mutex<HashMap<String, FakeUnit>>>;

/// What a test sees of the fake systemd: its units, the manager calls made
/// (`StopUnit apt-daily.timer`, `MaskUnitFiles runtime apt-daily.timer,…`,
/// `Reload`), and how many UnmaskUnitFiles calls to refuse first.
#[derive(Clone, Default)]
pub struct Systemd {
    pub units: Units,
    /// Units masked for this boot (MaskUnitFiles with runtime = true).
    pub masked: Arc<Mutex<std::collections::BTreeSet<String>>>,
    pub calls: Arc<Mutex<Vec<String>>>,
    pub fail_unmask: Arc<AtomicUsize>,
}

impl Systemd {
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    pub fn set(&self, name: &str, unit: FakeUnit) {
        self.units.lock().unwrap().insert(name.to_string(), unit);
    }
}

struct Manager {
    fake: Systemd,
    /// Whether calls never return: a systemd that is wedged.
    hang: bool,
}

impl Manager {
    fn unit(&self, name: &str) -> Option<FakeUnit> {
        self.fake.units.lock().unwrap().get(name).cloned()
    }

    fn log(&self, call: String) {
        self.fake.calls.lock().unwrap().push(call);
    }
}

#[zbus::interface(name = "org.freedesktop.systemd1.Manager")]
impl Manager {
    /// Known only for units in memory: active ones, as in systemd.
    async fn get_unit(&self, name: String) -> Result<OwnedObjectPath, SystemdError> {
        if self.hang {
            std::future::pending::<()>().await;
        }
        match self.unit(&name) {
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
        let path = unit_path(&name);
        serve_unit(server, &name, &self.fake.units).await?;
        Ok(path)
    }

    async fn stop_unit(&self, name: String, mode: String) -> Result<OwnedObjectPath, SystemdError> {
        let Some(mut u) = self.unit(&name) else {
            return Err(SystemdError::NoSuchUnit(format!("Unit {name} not loaded.")));
        };
        self.log(format!("StopUnit {name} {mode}"));
        u.active_state = "inactive";
        u.sub_state = "dead";
        self.fake.set(&name, u);
        Ok(OwnedObjectPath::try_from("/org/freedesktop/systemd1/job/1").unwrap())
    }

    async fn start_unit(
        &self,
        name: String,
        mode: String,
    ) -> Result<OwnedObjectPath, SystemdError> {
        let Some(mut u) = self.unit(&name) else {
            return Err(SystemdError::NoSuchUnit(format!("Unit {name} not found.")));
        };
        self.log(format!("StartUnit {name} {mode}"));
        u.active_state = "active";
        u.sub_state = if name.ends_with(".timer") {
            "waiting"
        } else {
            "running"
        };
        self.fake.set(&name, u);
        Ok(OwnedObjectPath::try_from("/org/freedesktop/systemd1/job/2").unwrap())
    }

    async fn mask_unit_files(
        &self,
        files: Vec<String>,
        runtime: bool,
        force: bool,
    ) -> Vec<(String, String, String)> {
        self.log(format!(
            "MaskUnitFiles runtime={runtime} force={force} {}",
            files.join(",")
        ));
        files
            .iter()
            .map(|f| {
                (
                    "symlink".to_string(),
                    format!("/run/systemd/system/{f}"),
                    "/dev/null".to_string(),
                )
            })
            .collect()
    }

    async fn unmask_unit_files(
        &self,
        files: Vec<String>,
        runtime: bool,
    ) -> Result<Vec<(String, String, String)>, SystemdError> {
        let refuse = self
            .fake
            .fail_unmask
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        self.log(format!(
            "UnmaskUnitFiles runtime={runtime} {}{}",
            files.join(","),
            if refuse { " (refused)" } else { "" }
        ));
        if refuse {
            return Err(SystemdError::ZBus(zbus::Error::Failure(
                "Access denied".into(),
            )));
        }
        Ok(files
            .iter()
            .map(|f| {
                (
                    "unlink".to_string(),
                    format!("/run/systemd/system/{f}"),
                    String::new(),
                )
            })
            .collect())
    }

    async fn get_unit_file_state(&self, name: String) -> Result<String, SystemdError> {
        if self.fake.masked.lock().unwrap().contains(&name) {
            return Ok("masked-runtime".into());
        }
        match self.unit(&name) {
            Some(_) => Ok(if name.ends_with(".timer") {
                "enabled"
            } else {
                "static"
            }
            .into()),
            None => Err(SystemdError::NoSuchUnit(format!(
                "No such file or directory: {name}"
            ))),
        }
    }

    async fn reload(&self) {
        self.log("Reload".into());
    }
}

struct Unit(Units, String);

impl Unit {
    fn get(&self) -> FakeUnit {
        self.0
            .lock()
            .unwrap()
            .get(&self.1)
            .cloned()
            .unwrap_or_else(FakeUnit::not_found)
    }
}

#[zbus::interface(name = "org.freedesktop.systemd1.Unit")]
impl Unit {
    #[zbus(property)]
    fn id(&self) -> String {
        self.1.clone()
    }
    #[zbus(property)]
    fn load_state(&self) -> String {
        self.get().load_state.into()
    }
    #[zbus(property)]
    fn active_state(&self) -> String {
        self.get().active_state.into()
    }
    #[zbus(property)]
    fn sub_state(&self) -> String {
        self.get().sub_state.into()
    }
    #[zbus(property)]
    fn active_enter_timestamp(&self) -> u64 {
        self.get().active_enter_usec
    }
}

struct Service(Unit);

#[zbus::interface(name = "org.freedesktop.systemd1.Service")]
impl Service {
    #[zbus(property, name = "MainPID")]
    fn main_pid(&self) -> u32 {
        self.0.get().main_pid
    }
    #[zbus(property, name = "NRestarts")]
    fn n_restarts(&self) -> u32 {
        self.0.get().n_restarts
    }
}

struct Timer(Unit);

#[zbus::interface(name = "org.freedesktop.systemd1.Timer")]
impl Timer {
    #[zbus(property, name = "NextElapseUSecRealtime")]
    fn next_elapse(&self) -> u64 {
        self.0.get().next_elapse_usec
    }
}

async fn serve_unit(server: &ObjectServer, name: &str, units: &Units) -> zbus::Result<()> {
    let path = unit_path(name);
    // Served once; a second LoadUnit finds it there.
    if server.interface::<_, Unit>(&path).await.is_ok() {
        return Ok(());
    }
    server
        .at(&path, Unit(units.clone(), name.to_string()))
        .await?;
    if name.ends_with(".service") {
        server
            .at(&path, Service(Unit(units.clone(), name.to_string())))
            .await?;
    } else if name.ends_with(".timer") {
        server
            .at(&path, Timer(Unit(units.clone(), name.to_string())))
            .await?;
    }
    Ok(())
}

/// Serves a fake systemd with these units until the connection is dropped.
pub async fn serve_systemd(
    address: &str,
    units: &[(&str, FakeUnit)],
    hang: bool,
) -> zbus::Connection {
    serve_systemd_shared(address, units, hang).await.0
}

/// The same, with a handle to change its units and read the calls made.
pub async fn serve_systemd_shared(
    address: &str,
    units: &[(&str, FakeUnit)],
    hang: bool,
) -> (zbus::Connection, Systemd) {
    let fake = Systemd::default();
    for (n, u) in units {
        fake.set(n, u.clone());
    }
    let conn = zbus::connection::Builder::address(address)
        .unwrap()
        .serve_at(
            "/org/freedesktop/systemd1",
            Manager {
                fake: fake.clone(),
                hang,
            },
        )
        .unwrap()
        .name("org.freedesktop.systemd1")
        .unwrap()
        .build()
        .await
        .unwrap();
    let names: Vec<String> = fake.units.lock().unwrap().keys().cloned().collect();
    for name in names {
        serve_unit(conn.object_server(), &name, &fake.units)
            .await
            .unwrap();
    }
    (conn, fake)
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
