//! Memory regions allocated up front for packet buffers and rings.
//!
//! A region is one anonymous mapping, backed by 2 MiB hugepages when the
//! system has them free and by normal pages otherwise. It is pre-faulted
//! (`MAP_POPULATE`) so the fast path never takes a page fault, and it never
//! moves, so a driver can register it with a device (MANA `ibv_reg_mr`,
//! DPDK external memory) once.

use std::io;
use std::ptr::NonNull;

/// Size of a hugepage on x86_64 Linux.
pub const HUGEPAGE_SIZE: usize = 2 << 20;
const PAGE_SIZE: usize = 4096;

/// Which page size backs a region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageKind {
    Huge2M,
    Normal,
}

/// How to back a region.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum HugepagePolicy {
    /// Hugepages when the system has enough free, normal pages otherwise.
    #[default]
    Prefer,
    /// Hugepages or fail.
    Require,
    /// Normal pages only.
    Never,
}

/// One anonymous, pre-faulted mapping. Unmapped on drop.
#[derive(Debug)]
pub struct MemRegion {
    base: NonNull<u8>,
    len: usize,
    kind: PageKind,
}

// SAFETY: a MemRegion is a plain range of process memory with no thread
// affinity; the types built on it decide who may touch which bytes.
unsafe impl Send for MemRegion {}
// SAFETY: as above; MemRegion itself exposes only the base pointer and size.
unsafe impl Sync for MemRegion {}

fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

impl MemRegion {
    /// Maps at least `len` bytes (rounded up to the page size used).
    pub fn new(len: usize, policy: HugepagePolicy) -> io::Result<MemRegion> {
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty memory region"));
        }
        if policy != HugepagePolicy::Never {
            match Self::map(round_up(len, HUGEPAGE_SIZE), true) {
                Ok(r) => return Ok(r),
                Err(e) if policy == HugepagePolicy::Require => return Err(e),
                Err(_) => {}
            }
        }
        Self::map(round_up(len, PAGE_SIZE), false)
    }

    fn map(len: usize, huge: bool) -> io::Result<MemRegion> {
        let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE;
        if huge {
            flags |= libc::MAP_HUGETLB;
        }
        // SAFETY: an anonymous private mapping at a kernel-chosen address
        // aliases no existing Rust object; the result is checked below.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0) };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        if !huge {
            // Transparent hugepages are a free win where enabled; failure is harmless.
            // SAFETY: the range was just mapped by us.
            unsafe { libc::madvise(p, len, libc::MADV_HUGEPAGE) };
        }
        Ok(MemRegion { base, len, kind: if huge { PageKind::Huge2M } else { PageKind::Normal } })
    }

    /// Start of the region.
    pub fn base(&self) -> NonNull<u8> {
        self.base
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Page size backing the region.
    pub fn page_kind(&self) -> PageKind {
        self.kind
    }

    /// Whether `[addr, addr+len)` lies inside the region.
    pub fn contains(&self, addr: usize, len: usize) -> bool {
        let b = self.base.as_ptr() as usize;
        addr >= b && addr.checked_add(len).is_some_and(|e| e <= b + self.len)
    }
}

impl Drop for MemRegion {
    fn drop(&mut self) {
        // SAFETY: base/len are exactly what mmap returned; nothing borrows
        // the region any more (its owners guarantee that before dropping).
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// Free 2 MiB hugepages on the system, from /proc/meminfo.
pub fn free_hugepages() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("HugePages_Free:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_region_is_zeroed_and_writable() {
        let r = MemRegion::new(10_000, HugepagePolicy::Never).expect("map");
        assert_eq!(r.page_kind(), PageKind::Normal);
        assert_eq!(r.len(), 12_288);
        // SAFETY: the region is ours and len bytes long.
        let s = unsafe { std::slice::from_raw_parts_mut(r.base().as_ptr(), r.len()) };
        assert!(s.iter().all(|&b| b == 0));
        s[r.len() - 1] = 7;
        assert!(r.contains(r.base().as_ptr() as usize, r.len()));
        assert!(!r.contains(r.base().as_ptr() as usize + 1, r.len()));
    }

    #[test]
    fn prefer_policy_uses_hugepages_exactly_when_free() {
        let before = free_hugepages();
        let r = MemRegion::new(HUGEPAGE_SIZE, HugepagePolicy::Prefer).expect("map");
        if before >= 1 {
            assert_eq!(r.page_kind(), PageKind::Huge2M, "{before} hugepages were free");
        } else {
            assert_eq!(r.page_kind(), PageKind::Normal);
            assert!(MemRegion::new(HUGEPAGE_SIZE, HugepagePolicy::Require).is_err());
        }
    }

    #[test]
    fn zero_length_is_an_error() {
        assert!(MemRegion::new(0, HugepagePolicy::Prefer).is_err());
    }
}
