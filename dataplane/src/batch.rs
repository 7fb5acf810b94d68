//! Batches of packets moving through the pipeline.

use crate::counters::{DropReason, PuntReason};
use crate::wire::Layers;
use ports::{PktBurst, PortId, MAX_BURST};

/// What happens to a packet; stages fill it in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Verdict {
    /// Not decided yet: the next stage looks at it.
    #[default]
    Pending,
    /// Transmit on this port.
    Tx(PortId),
    /// Rewritten for this port but larger than its MTU, DF clear: the
    /// worker fragments it (IPv4) into the port's TX burst.
    Fragment(PortId),
    /// Rewritten for this port except the destination MAC: the neighbour
    /// (slot `neigh`) is being resolved; the worker queues the packet.
    Resolve {
        port: PortId,
        neigh: u32,
    },
    Drop(DropReason),
    /// For the router's own stack.
    Punt(PuntReason),
}

/// A burst of packets with per-packet pipeline state (parallel arrays).
pub struct Batch {
    pub pkts: PktBurst,
    pub verdict: [Verdict; MAX_BURST],
    pub layers: [Layers; MAX_BURST],
}

impl Default for Batch {
    fn default() -> Self {
        Batch { pkts: PktBurst::new(), verdict: [Verdict::Pending; MAX_BURST], layers: [Layers::default(); MAX_BURST] }
    }
}

impl Batch {
    /// A batch on the heap (it is several KiB).
    pub fn boxed() -> Box<Batch> {
        Box::default()
    }

    #[inline(always)]
    pub fn len(&self) -> usize {
        self.pkts.len()
    }

    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.pkts.is_empty()
    }

    /// Resets the verdicts of the current packets to `Pending`.
    #[inline]
    pub fn reset_verdicts(&mut self) {
        let n = self.len();
        self.verdict[..n].fill(Verdict::Pending);
    }
}
