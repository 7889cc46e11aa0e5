//! Sending a run to SSM (one PutComplianceItems call) and what to do when
//! that fails: errors a retry can fix (no network, throttling, 5xx) keep the
//! report for later with a capped, jittered backoff; errors it cannot
//! (AccessDenied, validation) are recorded with the remedy for `status`.

pub use crate::aws::compliance::SendError;

use super::state::{Delivery, DeliveryState};
use std::time::{Duration, SystemTime};

/// When to try again: 30 s doubling per attempt up to 30 min, scaled by
/// 0.5–1.0 (`random` in 0..1) so hosts that failed together do not retry together.
pub fn backoff(attempts: u32, random: f64) -> Duration {
    crate::daemon::machine::backoff(
        attempts,
        Duration::from_secs(30),
        Duration::from_secs(30 * 60),
        random,
    )
}

/// A delay in `0..=max` for spreading a fleet's reports (`random` in 0..1).
pub fn jitter(max: Duration, random: f64) -> Duration {
    max.mul_f64(random.clamp(0.0, 1.0))
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Records an attempt's outcome in the delivery state.
pub fn record(
    delivery: &mut Delivery,
    result: &Result<(), SendError>,
    now: SystemTime,
    random: f64,
) {
    delivery.attempts += 1;
    delivery.last_attempt = Some(rfc3339(now));
    match result {
        Ok(()) => {
            delivery.state = DeliveryState::Delivered;
            delivery.delivered_at = Some(rfc3339(now));
            delivery.next_attempt = None;
            delivery.error = None;
            delivery.remedy = None;
        }
        Err(SendError::Retryable(why)) => {
            delivery.state = DeliveryState::Pending;
            delivery.next_attempt = Some(rfc3339(now + backoff(delivery.attempts, random)));
            delivery.error = Some(why.clone());
            delivery.remedy = None;
        }
        Err(SendError::Permanent { error, remedy }) => {
            delivery.state = DeliveryState::Rejected;
            delivery.next_attempt = None;
            delivery.error = Some(error.clone());
            delivery.remedy = Some(remedy.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1, 1.0), Duration::from_secs(30));
        assert_eq!(backoff(2, 1.0), Duration::from_secs(60));
        assert_eq!(backoff(3, 0.0), Duration::from_secs(60));
        assert_eq!(backoff(20, 1.0), Duration::from_secs(1800));
        assert_eq!(backoff(u32::MAX, 1.0), Duration::from_secs(1800));
        assert_eq!(
            jitter(Duration::from_secs(300), 0.5),
            Duration::from_secs(150)
        );
    }

    #[test]
    fn recording_attempts() {
        let mut d = Delivery::not_sent("r", "2026-11-26T10:00:00Z");
        let now = humantime::parse_rfc3339("2026-11-26T10:00:00Z").unwrap();
        record(&mut d, &Err(SendError::Retryable("down".into())), now, 1.0);
        assert_eq!(d.state, DeliveryState::Pending);
        assert_eq!(d.next_attempt.as_deref(), Some("2026-11-26T10:00:30Z"));
        record(&mut d, &Ok(()), now, 1.0);
        assert_eq!((d.state.clone(), d.attempts), (DeliveryState::Delivered, 2));
        assert!(d.error.is_none());
    }
}
