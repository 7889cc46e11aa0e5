//! When the host's maintenance windows open: AWS schedule expressions
//! (`cron()`, `rate()`, `at()`) and the windows they define. Pure: no I/O.

pub mod expr;
pub mod window;

pub use expr::{next_starts, Schedule, ScheduleError};
