//! The service's decisions, pure: the state machine and when to wake
//! (`machine`), when the checks are due (`planner`), when to hold the
//! host's updaters off a window (`hold`), and sleeping until a wall-clock
//! instant (`timer`). `service` drives them; nothing here knows a check or
//! a report.

pub mod hold;
pub mod machine;
pub mod planner;
pub mod timer;
