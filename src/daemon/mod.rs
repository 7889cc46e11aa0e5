//! The service's machinery, apart from what a run is: the state machine and
//! when to wake (`machine`), when the checks are due (`planner`), sleeping
//! until a wall-clock instant (`timer`), the status socket (`socket`), one
//! daemon per runtime directory (`instance`), sd_notify (`notify`) and when
//! to hold the host's updaters off a window (`hold`).
//! `run::service` drives it; nothing here knows a check or a report.

pub mod hold;
pub mod instance;
pub mod machine;
pub mod notify;
pub mod planner;
pub mod socket;
pub mod timer;
