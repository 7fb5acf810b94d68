//! vrouter control plane: configuration files, the daemon (`vrouterd`)
//! and the CLI (`vrouterctl`).

pub mod api;
pub mod config;
pub mod natconf;
pub mod stats;
