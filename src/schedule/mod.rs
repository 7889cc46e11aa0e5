//! When the host's maintenance windows open: schedule expressions (pure),
//! and the windows configured or read from SSM.

pub mod expr;
pub mod windows;

pub use expr::{next_starts, Schedule, ScheduleError};
