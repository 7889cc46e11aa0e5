//! The integration tests, one crate: the fakes in `common` are compiled
//! once. Each test makes its own state and runtime directories.

mod common;

mod architecture;
mod aws;
mod clean;
mod cli;
mod cloud;
mod daemon;
mod dbus;
mod docs;
mod faults;
mod fleet;
mod golden;
mod hold;
mod host_checks;
mod netns;
mod packaging;
mod real_lock;
mod report;
mod rhui;
mod signatures;
mod simulate;
mod simulate_rpm;
mod state;
