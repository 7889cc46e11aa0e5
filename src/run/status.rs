//! Asking the running service over its status socket.

pub use crate::daemon::socket::{ask, socket_path, AskError, GROUP};
