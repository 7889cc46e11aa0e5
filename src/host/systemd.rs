//! systemd and timedated over the system D-Bus: what `systemctl status` and
//! `timedatectl` see, read the way they read it. The bus address comes from
//! `DBUS_SYSTEM_BUS_ADDRESS` (zbus honours it) unless one is given, which is
//! how tests point at a private `dbus-daemon`.

use std::collections::HashMap;
use tokio::sync::OnceCell;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

const SYSTEMD: &str = "org.freedesktop.systemd1";
const SYSTEMD_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const TIMEDATE: &str = "org.freedesktop.timedate1";
const TIMEDATE_PATH: &str = "/org/freedesktop/timedate1";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";

/// Why a question to the bus got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusError {
    /// No system bus to connect to (a container, no dbus).
    NoBus(String),
    /// The bus answers but the service is not on it.
    NotOnBus {
        service: &'static str,
        message: String,
    },
    /// The service answered with an error.
    Failed(String),
}

impl std::fmt::Display for BusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BusError::NoBus(why) => write!(f, "there is no system D-Bus at {why}"),
            BusError::NotOnBus { service, message } => {
                write!(f, "{service} does not answer on the system bus ({message})")
            }
            BusError::Failed(why) => write!(f, "{why}"),
        }
    }
}

/// The system bus, connected on first use and shared by every check.
pub struct SystemBus {
    address: Option<String>,
    connection: OnceCell<Result<zbus::Connection, BusError>>,
}

impl SystemBus {
    /// `None`: the system bus as `DBUS_SYSTEM_BUS_ADDRESS` or the default socket says.
    pub fn new(address: Option<String>) -> Self {
        SystemBus {
            address,
            connection: OnceCell::new(),
        }
    }

    pub async fn connection(&self) -> Result<&zbus::Connection, BusError> {
        let result = self
            .connection
            .get_or_init(|| async {
                let builder = match &self.address {
                    Some(a) => zbus::connection::Builder::address(a.as_str()),
                    None => zbus::connection::Builder::system(),
                };
                let built = match builder {
                    Ok(b) => b.build().await,
                    Err(e) => Err(e),
                };
                let address = self
                    .address
                    .clone()
                    .or_else(|| std::env::var("DBUS_SYSTEM_BUS_ADDRESS").ok())
                    .unwrap_or_else(|| "unix:path=/var/run/dbus/system_bus_socket".into());
                built.map_err(|e| {
                    // zbus repeats the address ("Failed to connect to address `…`: why").
                    let text = e.to_string();
                    let why = text
                        .rsplit_once("`: ")
                        .map_or(text.as_str(), |(_, w)| w)
                        .to_string();
                    BusError::NoBus(format!("{address} ({why})"))
                })
            })
            .await;
        result.as_ref().map_err(Clone::clone)
    }

    async fn call<B>(
        &self,
        service: &'static str,
        path: &str,
        interface: &str,
        method: &str,
        body: &B,
    ) -> Result<zbus::Message, BusError>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        let conn = self.connection().await?;
        conn.call_method(Some(service), path, Some(interface), method, body)
            .await
            .map_err(|e| classify(service, e))
    }

    async fn properties(
        &self,
        service: &'static str,
        path: &str,
        interface: &str,
    ) -> Result<HashMap<String, OwnedValue>, BusError> {
        let reply = self
            .call(service, path, PROPERTIES, "GetAll", &(interface,))
            .await?;
        body(&reply, service)
    }
}

/// A reply's body as the type the method returns.
fn body<T>(reply: &zbus::Message, service: &str) -> Result<T, BusError>
where
    T: for<'d> serde::Deserialize<'d> + zbus::zvariant::Type,
{
    reply
        .body()
        .deserialize()
        .map_err(|e| BusError::Failed(format!("unexpected reply from {service}: {e}")))
}

/// Whether an error means "nobody there" or "it said no".
fn classify(service: &'static str, e: zbus::Error) -> BusError {
    if let zbus::Error::MethodError(name, message, _) = &e {
        let name = name.as_str();
        if name == "org.freedesktop.DBus.Error.ServiceUnknown"
            || name == "org.freedesktop.DBus.Error.NameHasNoOwner"
        {
            return BusError::NotOnBus {
                service,
                message: message.clone().unwrap_or_else(|| name.to_string()),
            };
        }
    }
    BusError::Failed(e.to_string())
}

/// A unit as systemd reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnitInfo {
    pub name: String,
    /// `loaded`, `not-found`, `masked`, `error`, `bad-setting`.
    pub load_state: String,
    /// `active`, `inactive`, `activating`, `deactivating`, `failed`, `reloading`.
    pub active_state: String,
    /// `running`, `auto-restart`, `dead`, `failed`, `waiting`, …
    pub sub_state: String,
    /// When it last entered `active`, µs since the epoch (0: never).
    pub active_enter_usec: u64,
    /// Services: the main process (0: none).
    pub main_pid: u32,
    /// Services: automatic restarts since it was last started by hand.
    pub n_restarts: Option<u32>,
    /// Timers: the next wall-clock elapse, µs since the epoch (0: none).
    pub next_elapse_usec: Option<u64>,
}

impl UnitInfo {
    pub fn exists(&self) -> bool {
        self.load_state != "not-found"
    }
}

fn string(map: &HashMap<String, OwnedValue>, key: &str) -> String {
    map.get(key)
        .and_then(|v| <&str>::try_from(v).ok())
        .unwrap_or_default()
        .to_string()
}

fn number<T: for<'a> TryFrom<&'a OwnedValue>>(
    map: &HashMap<String, OwnedValue>,
    key: &str,
) -> Option<T> {
    map.get(key).and_then(|v| T::try_from(v).ok())
}

/// Looks a unit up as `systemctl status` does: `GetUnit`, and `LoadUnit`
/// when it is not loaded (which reports `not-found` for unknown units).
pub async fn unit(bus: &SystemBus, name: &str) -> Result<UnitInfo, BusError> {
    let path: OwnedObjectPath = match bus
        .call(SYSTEMD, SYSTEMD_PATH, MANAGER, "GetUnit", &(name,))
        .await
    {
        Ok(reply) => body(&reply, SYSTEMD)?,
        Err(BusError::Failed(_)) => body(
            &bus.call(SYSTEMD, SYSTEMD_PATH, MANAGER, "LoadUnit", &(name,))
                .await?,
            SYSTEMD,
        )?,
        Err(e) => return Err(e),
    };
    let unit = bus
        .properties(SYSTEMD, path.as_str(), "org.freedesktop.systemd1.Unit")
        .await?;
    let mut info = UnitInfo {
        name: name.to_string(),
        load_state: string(&unit, "LoadState"),
        active_state: string(&unit, "ActiveState"),
        sub_state: string(&unit, "SubState"),
        active_enter_usec: number(&unit, "ActiveEnterTimestamp").unwrap_or(0),
        ..Default::default()
    };
    if !info.exists() {
        return Ok(info);
    }
    if name.ends_with(".service") {
        let service = bus
            .properties(SYSTEMD, path.as_str(), "org.freedesktop.systemd1.Service")
            .await?;
        info.main_pid = number(&service, "MainPID").unwrap_or(0);
        info.n_restarts = number(&service, "NRestarts");
    } else if name.ends_with(".timer") {
        let timer = bus
            .properties(SYSTEMD, path.as_str(), "org.freedesktop.systemd1.Timer")
            .await?;
        info.next_elapse_usec = number(&timer, "NextElapseUSecRealtime");
    }
    Ok(info)
}

/// Changes that need systemd's manager: the hold of the host's updaters
/// (`remediate.hold_updaters`). Each is what `systemctl` asks for the same
/// command; the caller must be allowed to (root with CAP_SYS_ADMIN, or
/// polkit's say-so).
async fn manager(
    bus: &SystemBus,
    method: &str,
    body: &(impl serde::Serialize + zbus::zvariant::DynamicType),
) -> Result<zbus::Message, BusError> {
    bus.call(SYSTEMD, SYSTEMD_PATH, MANAGER, method, body).await
}

/// `systemctl stop NAME`: a stop job in mode `replace`.
pub async fn stop_unit(bus: &SystemBus, name: &str) -> Result<(), BusError> {
    manager(bus, "StopUnit", &(name, "replace"))
        .await
        .map(|_| ())
}

/// `systemctl start NAME`.
pub async fn start_unit(bus: &SystemBus, name: &str) -> Result<(), BusError> {
    manager(bus, "StartUnit", &(name, "replace"))
        .await
        .map(|_| ())
}

/// `systemctl mask --runtime NAMES…`: links to /dev/null under
/// /run/systemd, gone at the next boot, then a daemon-reload as systemctl
/// does. `force` replaces an existing runtime link.
pub async fn mask_runtime(bus: &SystemBus, names: &[String]) -> Result<(), BusError> {
    manager(bus, "MaskUnitFiles", &(names, true, true)).await?;
    manager(bus, "Reload", &()).await.map(|_| ())
}

/// `systemctl unmask --runtime NAMES…`, then a daemon-reload.
pub async fn unmask_runtime(bus: &SystemBus, names: &[String]) -> Result<(), BusError> {
    manager(bus, "UnmaskUnitFiles", &(names, true)).await?;
    manager(bus, "Reload", &()).await.map(|_| ())
}

/// `systemctl is-enabled NAME`: `enabled`, `masked-runtime`, `static`, ….
pub async fn unit_file_state(bus: &SystemBus, name: &str) -> Result<String, BusError> {
    body(&manager(bus, "GetUnitFileState", &(name,)).await?, SYSTEMD)
}

/// What timedated says about the clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeSync {
    /// An NTP service is enabled.
    pub ntp: bool,
    /// The kernel clock is synchronized (adjtimex says so).
    pub synchronized: bool,
    pub timezone: String,
    /// An NTP service is installed that `timedatectl set-ntp` can turn on
    /// (`None`: timedated did not say).
    pub can_ntp: Option<bool>,
}

pub async fn time_sync(bus: &SystemBus) -> Result<TimeSync, BusError> {
    let props = bus.properties(TIMEDATE, TIMEDATE_PATH, TIMEDATE).await?;
    Ok(TimeSync {
        ntp: number(&props, "NTP").unwrap_or(false),
        synchronized: number(&props, "NTPSynchronized").unwrap_or(false),
        timezone: string(&props, "Timezone"),
        can_ntp: number(&props, "CanNTP"),
    })
}
