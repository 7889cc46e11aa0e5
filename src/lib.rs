//! ssm-preflight: finds what will break an AWS Systems Manager Patch Manager
//! run on this host before the maintenance window opens.
//!
//! Layers, top to bottom; each module imports only those below it (the
//! architecture test in `tests/suite/architecture.rs` holds this):
//!
//! 1. `commands` — the command line and what each command prints.
//! 2. `run` — one run: prepare, execute, record, deliver; the service loop.
//! 3. `checks` (pure verdicts) and `daemon` (the service's state machine,
//!    timer, socket, sd_notify); neither imports the other.
//! 4. `facts` (one run's shared facts) over `aws` over `host`: the only
//!    modules that read the host or the network.
//! 5. `config` — the config file to validated settings; a leaf.

pub mod aws;
pub mod checks;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod facts;
pub mod host;
pub mod run;
