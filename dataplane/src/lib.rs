//! vrouter dataplane: wire views, batches, stages, tables, workers,
//! counters, and the built-in traffic generator.
//!
//! Nothing here knows about gRPC or config files; the `control` crate
//! drives it through [`runtime::Runtime`].

pub mod acl;
pub mod batch;
pub mod counters;
mod ctlword;
pub mod ecmp;
pub mod fib;
pub mod frag;
pub mod l3;
pub mod local;
pub mod nat;
pub mod neigh;
pub mod rcu;
pub mod runtime;
pub mod stage;
pub mod tables;
pub mod testgen;
pub mod tsc;
pub mod wire;
pub mod worker;

pub use batch::{Batch, Verdict};
pub use counters::{DropReason, PuntReason, WorkerStats};
pub use tables::{PortEntry, TableHandle, Tables};
pub use worker::{IdlePolicy, Worker, WorkerError, WorkerSpec};
