//! The service's decisions, pure: the state machine and when to wake
//! (`machine`), when the checks are due (`planner`), and when to hold the
//! host's updaters off a window (`hold`). `service` drives them (sleeping
//! with `host::timer`); nothing here knows a check or a report.

pub mod hold;
pub mod machine;
pub mod planner;
