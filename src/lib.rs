//! ssm-preflight: finds what will break an AWS Systems Manager Patch Manager
//! run on this host before the maintenance window opens.

pub mod app;
pub mod aws;
pub mod checks;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod gate;
pub mod host;
pub mod logging;
pub mod report;
pub mod schedule;
