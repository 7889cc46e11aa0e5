//! Sleeping until a wall-clock instant without polling: a `CLOCK_REALTIME`
//! timerfd set to an absolute time with `TFD_TIMER_CANCEL_ON_SET`, so the
//! kernel wakes us at the instant (also after a suspend, since the real-time
//! clock counts it), and early with `ECANCELED` when the clock is set — the
//! plan is then recomputed against the new time.

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::unix::AsyncFd;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woke {
    /// The instant came.
    Due,
    /// The wall clock was set (a jump): recompute.
    ClockChanged,
}

/// The timer as tokio's reactor wants it (nix's type only offers `AsFd`).
struct Timer(TimerFd);

impl AsRawFd for Timer {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

pub async fn sleep_until(at: SystemTime) -> std::io::Result<Woke> {
    let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    if at <= SystemTime::now() {
        return Ok(Woke::Due);
    }
    let timer = TimerFd::new(
        ClockId::CLOCK_REALTIME,
        TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
    )?;
    timer.set(
        Expiration::OneShot(TimeSpec::from_duration(since_epoch)),
        TimerSetTimeFlags::TFD_TIMER_ABSTIME | TimerSetTimeFlags::TFD_TIMER_CANCEL_ON_SET,
    )?;
    // SAFETY: the AsyncFd owns the timer, so the descriptor stays open for
    // as long as it is registered.
    let fd = unsafe { AsyncFd::register(Timer(timer)) }.map_err(std::io::Error::from)?;
    loop {
        let mut guard = fd.readable().await?;
        let mut buf = [0u8; 8];
        match nix::unistd::read(guard.get_inner().0.as_fd(), &mut buf) {
            Ok(_) => return Ok(Woke::Due),
            Err(nix::errno::Errno::ECANCELED) => return Ok(Woke::ClockChanged),
            Err(nix::errno::Errno::EAGAIN) => guard.clear_ready(),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn wakes_at_the_instant_not_before() {
        let at = SystemTime::now() + Duration::from_millis(150);
        assert_eq!(sleep_until(at).await.unwrap(), Woke::Due);
        assert!(SystemTime::now() >= at);
        // An instant already past is due at once.
        assert_eq!(
            sleep_until(SystemTime::now() - Duration::from_secs(1))
                .await
                .unwrap(),
            Woke::Due
        );
    }
}
