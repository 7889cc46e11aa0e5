//! ssm-preflight: finds what will break an AWS Systems Manager Patch Manager
//! run on this host before the maintenance window opens.
//!
//! Rooms by feature, top to bottom; each imports only those below it (the
//! architecture test in `tests/suite/architecture.rs` holds this):
//!
//! 1. `commands` — the command line and what each command prints.
//! 2. `service` — the daemon: one object owning its loop, the status
//!    socket, remediation (hold, clean) and metrics; `fleet` — the
//!    operator's view of a patch group or window over SSM.
//! 3. `run` — one run's pipeline: prepare, execute, record, deliver, gate.
//! 4. `checks` (pure verdicts) and `daemon` (pure: the state machine, the
//!    planner, hold spans, the timer); neither imports the other.
//! 5. `facts` — one run's shared facts, gathered once.
//! 6. `aws` (AWS calls) over `network` (proxy rules, TLS, probes, the
//!    repositories' indexes) over `host` (every host file and syscall).
//! 7. `config` — the config file to validated settings; a leaf.

pub mod aws;
pub mod checks;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod facts;
pub mod fleet;
pub mod host;
pub mod network;
pub mod run;
pub mod service;
pub mod text;
