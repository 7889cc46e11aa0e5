//! `clock.sync`: the clock is kept by NTP, as timedated reports it. SigV4
//! rejects requests signed more than 5 minutes off, so an unsynchronized
//! clock makes every SSM call of the patch run fail.

use super::agent::bus_outcome;
use super::{CatalogueEntry, Context, Group, Outcome, Severity};
use crate::host::systemd::{self, BusError, TimeSync};

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "clock.sync",
    group: Group::Access,
    title: "Clock synchronized",
    severity: Severity::High,
};

pub fn plan(ctx: &Context) -> super::Check {
    let ctx2 = ctx.clone();
    ctx.check_async(&ENTRY, ENTRY.id, async move {
        match systemd::time_sync(&ctx2.shared.bus).await {
            Ok(sync) => judge(&sync),
            Err(e @ BusError::NotOnBus { .. }) => Outcome::error(
                e.to_string(),
                "Check that timedated can start: `timedatectl status` asks it the same question.",
            ),
            Err(e) => bus_outcome(&e),
        }
    })
}

pub fn judge(s: &TimeSync) -> Outcome {
    let outcome = match (s.synchronized, s.ntp) {
        (true, _) => Outcome::pass("the system clock is synchronized by NTP"),
        (false, true) => Outcome::warn(
            "NTP is enabled but the system clock is not synchronized yet",
            "See what the time service says: `chronyc tracking` or `timedatectl timesync-status`; check that it can reach its servers (on EC2, 169.254.169.123).",
        ),
        (false, false) => Outcome::warn(
            "the system clock is not synchronized and no NTP service is enabled",
            "Enable time synchronization: `sudo timedatectl set-ntp true` (on EC2, point chrony at the Amazon Time Sync Service, 169.254.169.123).",
        ),
    };
    outcome
        .detail("ntp", s.ntp)
        .detail("synchronized", s.synchronized)
        .detail("timezone", &s.timezone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;

    #[test]
    fn verdicts() {
        let sync = |synchronized, ntp| TimeSync {
            ntp,
            synchronized,
            timezone: "UTC".into(),
        };
        assert_eq!(judge(&sync(true, true)).status, Status::Pass);
        assert_eq!(judge(&sync(false, true)).status, Status::Warn);
        assert!(judge(&sync(false, false))
            .remedy
            .unwrap()
            .contains("sudo timedatectl set-ntp true"));
    }
}
