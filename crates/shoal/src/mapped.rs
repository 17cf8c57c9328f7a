//! Read-only memory maps of files, safe against files that shrink while they are mapped.
//!
//! Two users, both to skip a copy out of the page cache:
//! - `shoal create` hashes source files straight from maps ([`crate::create`]): on 2 GiB with a
//!   warm cache the copy of positional reads was ~0.4 of ~1.8 CPU seconds (SHA-1 is ~1.3 s).
//! - Seeding serves blocks as slices of maps ([`crate::storage`]): the peer's socket copies the
//!   bytes from the page cache into its buffers, and nothing copies them before that.
//!
//! The hazard of maps: if another program truncates a file while it is mapped, touching a page
//! past the new end raises `SIGBUS`, which would kill the process. This module makes that an
//! error instead, the way libtorrent's mmap storage does with its signal guard:
//! - every live map registers its address range in a fixed table of [`SLOTS`] atomics (no
//!   allocation, no lock: the signal handler may read it at any moment);
//! - a `SIGBUS` handler, installed once, looks the faulting address up in that table. Inside a
//!   registered map it puts a zero-filled anonymous page over the faulting page (`MAP_FIXED`),
//!   marks the map as faulted and returns, so the interrupted read resumes on zeros. Anywhere
//!   else it hands the signal to the handler that was installed before (or the default action,
//!   which ends the process as it would have without us).
//! - [`MappedFile::faulted`] tells whether that happened; `create` checks it after each hashed
//!   range and turns a fault into `CreateError::FileChanged`, so no hash computed over the zeros
//!   is ever used. A served block is read by the kernel (the socket write), not by our code: a
//!   vanished page makes that write fail with `EFAULT` and the connection closes.
//!
//! When a map cannot be made (no free slot, `mmap` fails, the handler cannot be installed, a
//! file too large for the address space) the callers fall back to positional reads; maps are an
//! optimisation, never a requirement. Only Linux and other unix systems with `SA_SIGINFO` build
//! this module.
#![allow(unsafe_code)] // mmap, munmap and sigaction: see the safety comments at each call.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Live maps at most: one per hashing thread for `create`, a few windows per seeding torrent.
/// Past that, callers read instead.
const SLOTS: usize = 512;

/// One registered map: `start == 0` means free.
struct Slot {
    start: AtomicUsize,
    len: AtomicUsize,
    faulted: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)] // only used to build the static array below
const FREE_SLOT: Slot = Slot {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    faulted: AtomicBool::new(false),
};

static TABLE: [Slot; SLOTS] = [FREE_SLOT; SLOTS];

/// The `SIGBUS` action that was in place before ours, for faults outside our maps.
struct PreviousAction(libc::sigaction);
// SAFETY: a plain C struct of integers and function pointers, written once before it is shared.
unsafe impl Send for PreviousAction {}
// SAFETY: as above; only read after the OnceLock publishes it.
unsafe impl Sync for PreviousAction {}

/// `Some` once our handler is installed; `None` if installing failed.
static PREVIOUS: OnceLock<Option<PreviousAction>> = OnceLock::new();

/// A read-only shared map of part of a file, registered with the `SIGBUS` guard.
#[derive(Debug)]
pub(crate) struct MappedFile {
    ptr: *mut libc::c_void,
    len: usize,
    slot: usize,
}

// SAFETY: the map is read-only and owned by this value; the raw pointer is not shared.
unsafe impl Send for MappedFile {}
// SAFETY: the mapped memory is never written through this value (PROT_READ), so shared
// references from several threads only ever read it.
unsafe impl Sync for MappedFile {}

/// How the pages of a map will be read, passed to the kernel as `madvise` advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Advice {
    /// Front to back once (hashing): aggressive read-ahead.
    Sequential,
    /// Blocks in the order peers ask for them: the kernel's default read-ahead.
    Normal,
}

impl MappedFile {
    /// Maps bytes `offset..offset + len` of `file` (`offset` a multiple of the page size).
    /// `None` when the map cannot be made safely; the caller then reads the file instead.
    pub(crate) fn new(file: &File, offset: u64, len: u64, advice: Advice) -> Option<MappedFile> {
        let len = usize::try_from(len).ok().filter(|&len| len > 0)?;
        let offset = libc::off_t::try_from(offset).ok()?;
        if !guard_installed() {
            return None;
        }
        let slot = claim_slot()?;
        // SAFETY: a new read-only shared map chosen by the kernel; it aliases no Rust memory.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            release_slot(slot);
            return None;
        }
        if advice == Advice::Sequential {
            // SAFETY: advice on the map just made; failure only loses the read-ahead hint.
            unsafe { libc::madvise(ptr, len, libc::MADV_SEQUENTIAL) };
        }
        let entry = &TABLE[slot];
        entry.len.store(len, Ordering::SeqCst);
        entry.faulted.store(false, Ordering::SeqCst);
        entry.start.store(ptr as usize, Ordering::SeqCst);
        Some(MappedFile { ptr, len, slot })
    }

    /// Bytes `offset..offset + len` of the mapped range. A page that vanished because the file shrank
    /// reads as zeros and sets [`MappedFile::faulted`]; check it before trusting a result.
    pub(crate) fn bytes(&self, offset: usize, len: usize) -> Option<&[u8]> {
        let end = offset.checked_add(len)?;
        if end > self.len {
            return None;
        }
        // SAFETY: `offset..end` lies inside the live map, which outlives the returned borrow;
        // the map is read-only, so no `&mut` aliases it. Pages removed by truncation are
        // replaced with zero pages by the guard instead of faulting.
        Some(unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>().add(offset), len) })
    }

    /// Brings bytes `offset..offset + len` into memory now (page cache and page tables), so
    /// that whoever reads them next — the kernel copying a served block into a socket, on an
    /// async thread — does not wait for the disk. False when the range is outside the map, no
    /// longer backed by the file (it shrank), or the kernel cannot do it (`MADV_POPULATE_READ`
    /// needs Linux 5.14): the caller then reads the file instead.
    pub(crate) fn populate(&self, offset: usize, len: usize) -> bool {
        let Some(end) = offset.checked_add(len).filter(|&end| end <= self.len) else {
            return false;
        };
        populate_range(self.ptr.cast::<u8>(), offset, end)
    }

    /// Bytes mapped.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// True once any read of this map touched a page past the file's (new) end.
    pub(crate) fn faulted(&self) -> bool {
        TABLE[self.slot].faulted.load(Ordering::SeqCst)
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        // Unregister first, so the handler never treats a later map at this address as ours.
        TABLE[self.slot].start.store(0, Ordering::SeqCst);
        // SAFETY: `ptr..ptr+len` is exactly the map made in `new` (zero pages the guard put in
        // it are part of the same range); no borrow of it outlives `self`.
        unsafe { libc::munmap(self.ptr, self.len) };
        release_slot(self.slot);
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn populate_range(base: *mut u8, offset: usize, end: usize) -> bool {
    let page = page_size();
    let start = offset - offset % page;
    // SAFETY: `start..end` lies inside a live map of ours (checked by the caller); populating
    // only reads the file into it. A range past the file's end fails with EFAULT, no signal.
    unsafe {
        libc::madvise(
            base.add(start).cast(),
            end - start,
            libc::MADV_POPULATE_READ,
        ) == 0
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn populate_range(_base: *mut u8, _offset: usize, _end: usize) -> bool {
    false
}

/// The system's page size: map offsets must be multiples of it.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096).max(4096)
}

/// Slot ownership, separate from `start` so a slot is not reused while its map is live.
static CLAIMED: [AtomicBool; SLOTS] = [const { AtomicBool::new(false) }; SLOTS];

fn claim_slot() -> Option<usize> {
    CLAIMED.iter().position(|claimed| {
        claimed
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    })
}

fn release_slot(slot: usize) {
    CLAIMED[slot].store(false, Ordering::SeqCst);
}

fn guard_installed() -> bool {
    PREVIOUS.get_or_init(install_guard).is_some()
}

fn install_guard() -> Option<PreviousAction> {
    // SAFETY: sigaction with a zeroed (valid all-zero C struct) action whose handler is an
    // `extern "C"` function of the SA_SIGINFO shape; the old action is written to `previous`.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            on_sigbus;
        action.sa_sigaction = handler as libc::sighandler_t;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
        libc::sigemptyset(&mut action.sa_mask);
        let mut previous: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGBUS, &action, &mut previous) != 0 {
            return None;
        }
        Some(PreviousAction(previous))
    }
}

/// The `SIGBUS` handler. Async-signal-safe: atomics, `mmap` and `sigaction` only.
extern "C" fn on_sigbus(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let address = unsafe { (*info).si_addr() } as usize;
    if let Some(slot) = TABLE.iter().find(|slot| {
        let start = slot.start.load(Ordering::SeqCst);
        start != 0 && address >= start && address - start < slot.len.load(Ordering::SeqCst)
    }) {
        if zero_page_at(address) {
            slot.faulted.store(true, Ordering::SeqCst);
            return;
        }
    }
    pass_on(signal, info, context);
}

/// Replaces the page holding `address` with a zero-filled private page.
fn zero_page_at(address: usize) -> bool {
    // SAFETY: sysconf is async-signal-safe; the page lies inside one of our registered maps,
    // which only this module's code reads, and only as bytes.
    unsafe {
        let page = libc::sysconf(libc::_SC_PAGESIZE).max(4096) as usize;
        let base = address & !(page - 1);
        let mapped = libc::mmap(
            base as *mut libc::c_void,
            page,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        );
        mapped != libc::MAP_FAILED
    }
}

/// A fault that is not ours: run the previous handler, or restore the default action and
/// return so the faulting instruction runs again and ends the process as usual.
fn pass_on(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let Some(Some(PreviousAction(previous))) = PREVIOUS.get() else {
        restore_default(signal);
        return;
    };
    let handler = previous.sa_sigaction;
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        restore_default(signal);
    } else if previous.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed with SA_SIGINFO, so it has this shape.
        let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(handler) };
        handler(signal, info, context);
    } else {
        // SAFETY: a handler installed without SA_SIGINFO takes only the signal number.
        let handler: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
        handler(signal);
    }
}

fn restore_default(signal: libc::c_int) {
    // SAFETY: sigaction is async-signal-safe; a zeroed action with SIG_DFL is valid.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(signal, &action, std::ptr::null_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_of(len: usize) -> (tempfile::TempDir, std::path::PathBuf, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.bin");
        let mut file = File::create(&path).unwrap();
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8 + 1).collect();
        file.write_all(&bytes).unwrap();
        let reader = File::open(&path).unwrap();
        (dir, path, reader)
    }

    /// Another program shrinks the file to `len` bytes.
    fn truncate(path: &std::path::Path, len: u64) {
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        file.set_len(len).unwrap();
    }

    #[test]
    fn reads_what_the_file_holds() {
        let (_dir, _path, file) = file_of(3 * 4096 + 17);
        let map = MappedFile::new(&file, 0, 3 * 4096 + 17, Advice::Normal).unwrap();
        let bytes = map.bytes(4090, 10).unwrap();
        let expected: Vec<u8> = (4090..4100).map(|i| (i % 251) as u8 + 1).collect();
        assert_eq!(bytes, &expected[..]);
        assert!(
            map.bytes(3 * 4096 + 10, 8).is_none(),
            "past the end is refused"
        );
        assert!(!map.faulted());
        let window = MappedFile::new(&file, 4096, 2 * 4096, Advice::Normal).unwrap();
        let want: Vec<u8> = (4096..4106).map(|i| (i % 251) as u8 + 1).collect();
        assert_eq!(window.bytes(0, 10).unwrap(), &want[..]);
    }

    #[test]
    fn a_file_truncated_under_the_map_reads_zeros_and_reports_a_fault() {
        let len = 64 * 4096;
        let (_dir, path, file) = file_of(len);
        let map = MappedFile::new(&file, 0, len as u64, Advice::Sequential).unwrap();
        truncate(&path, 4096);
        // Without the guard this read would kill the test process with SIGBUS.
        let tail = map.bytes(len - 4096, 4096).unwrap();
        assert!(tail.iter().all(|&b| b == 0));
        assert!(map.faulted());
        // The slot is free again after drop, and a new map starts clean.
        drop(map);
        let (_dir2, _path2, other) = file_of(4096);
        let fresh = MappedFile::new(&other, 0, 4096, Advice::Normal).unwrap();
        assert!(!fresh.faulted());
    }

    #[test]
    fn populate_brings_in_what_the_file_holds_and_refuses_what_it_lost() {
        let len = 16 * 4096;
        let (_dir, path, file) = file_of(len);
        let map = MappedFile::new(&file, 0, len as u64, Advice::Normal).unwrap();
        assert!(map.populate(5000, 16384));
        assert!(!map.populate(len - 10, 16384), "outside the map");
        truncate(&path, 4096);
        assert!(!map.populate(8 * 4096, 4096), "truncated away");
        assert!(!map.faulted(), "no signal was needed");
    }

    #[test]
    fn empty_files_are_not_mapped() {
        let (_dir, _path, file) = file_of(0);
        assert!(MappedFile::new(&file, 0, 0, Advice::Normal).is_none());
    }
}
