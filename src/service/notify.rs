//! sd_notify: READY, STATUS, RELOADING, STOPPING and the watchdog, to the
//! NOTIFY_SOCKET systemd gives a `Type=notify` service (nothing elsewhere).

pub use sd_notify::NotifyState;
use std::time::Duration;

pub fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::debug!("sd_notify: {e}");
    }
}

/// How often to ping the watchdog (half its timeout), when systemd set one.
pub fn watchdog_every() -> Option<Duration> {
    let mut usec = 0;
    sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec / 2))
}
