//! Cycle counting for per-packet cost.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The time-stamp counter (x86_64), or nanoseconds elsewhere.
#[inline(always)]
pub fn now() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC has no preconditions and touches no memory.
        #[allow(unused_unsafe)]
        unsafe {
            core::arch::x86_64::_rdtsc()
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }
}

/// Ticks of [`now`] per second, measured once over 50 ms.
pub fn hz() -> u64 {
    static HZ: OnceLock<u64> = OnceLock::new();
    *HZ.get_or_init(|| {
        let (t0, c0) = (Instant::now(), now());
        std::thread::sleep(Duration::from_millis(50));
        let (dt, dc) = (t0.elapsed(), now().wrapping_sub(c0));
        ((dc as f64) / dt.as_secs_f64()) as u64
    })
}

/// Whole seconds in `ticks` of [`now`] (TSC time since boot).
#[inline]
pub fn secs(ticks: u64) -> u64 {
    ticks / hz().max(1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn counter_advances_at_a_plausible_rate() {
        let a = super::now();
        let hz = super::hz();
        assert!(super::now() > a);
        assert!((100_000_000..20_000_000_000).contains(&hz), "{hz}");
    }
}
