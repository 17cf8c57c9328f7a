//! A bounded cache of open file handles, least recently used out first.
//!
//! Positional IO (`read_exact_at` / `write_all_at`) needs no seek state, so one `Arc<File>` is
//! shared by every pool thread working on the same file; the lock is held only to look a handle
//! up, never during IO or `open`. A handle opened read-only is replaced by a read-write one the
//! first time a write needs it. Evicting a handle closes it once the last IO using it ends; dirty
//! data stays in the page cache and a later `sync_data` through a new handle still flushes it.

use std::fs::File;
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Debug)]
struct Entry {
    file_index: usize,
    file: Arc<File>,
    writable: bool,
    last_used: u64,
}

#[derive(Debug, Default)]
struct Inner {
    entries: Vec<Entry>,
    clock: u64,
}

/// Open handles of one torrent's files, at most `capacity` at a time.
#[derive(Debug)]
pub(crate) struct FileHandles {
    capacity: usize,
    inner: Mutex<Inner>,
}

impl FileHandles {
    pub(crate) fn new(capacity: usize) -> Self {
        FileHandles {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The handle of file `file_index`, opening it with `open(writable)` on a miss (or when a
    /// write needs a read-only handle upgraded).
    pub(crate) fn get<E>(
        &self,
        file_index: usize,
        writable: bool,
        open: impl FnOnce() -> Result<File, E>,
    ) -> Result<Arc<File>, E> {
        if let Some(file) = self.lookup(file_index, writable) {
            return Ok(file);
        }
        let file = Arc::new(open()?);
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.clock += 1;
        let now = inner.clock;
        inner.entries.retain(|e| e.file_index != file_index);
        if inner.entries.len() >= self.capacity {
            if let Some(oldest) =
                (0..inner.entries.len()).min_by_key(|&i| inner.entries[i].last_used)
            {
                inner.entries.swap_remove(oldest);
            }
        }
        inner.entries.push(Entry {
            file_index,
            file: Arc::clone(&file),
            writable,
            last_used: now,
        });
        Ok(file)
    }

    fn lookup(&self, file_index: usize, writable: bool) -> Option<Arc<File>> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.clock += 1;
        let now = inner.clock;
        let entry = inner
            .entries
            .iter_mut()
            .find(|e| e.file_index == file_index)?;
        if writable && !entry.writable {
            return None;
        }
        entry.last_used = now;
        Some(Arc::clone(&entry.file))
    }

    /// Number of handles open now.
    pub(crate) fn open_count(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn least_recently_used_goes_first_and_writes_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let opens = Cell::new(0);
        let open = |name: &str| {
            opens.set(opens.get() + 1);
            File::create(dir.path().join(name))
        };
        let handles = FileHandles::new(2);
        handles.get(0, false, || open("a")).unwrap();
        handles.get(1, false, || open("b")).unwrap();
        handles.get(0, false, || open("a")).unwrap(); // hit; 1 is now the oldest
        assert_eq!(opens.get(), 2);
        handles.get(2, false, || open("c")).unwrap(); // evicts 1
        assert_eq!(handles.open_count(), 2);
        handles.get(0, false, || open("a")).unwrap();
        assert_eq!(opens.get(), 3, "0 stayed open");
        handles.get(1, false, || open("b")).unwrap();
        assert_eq!(opens.get(), 4, "1 was evicted");
        handles.get(1, true, || open("b")).unwrap();
        assert_eq!(opens.get(), 5, "read-only handle upgraded for a write");
        handles.get(1, false, || open("b")).unwrap();
        assert_eq!(opens.get(), 5, "a writable handle serves reads");
        assert_eq!(handles.open_count(), 2);
    }
}
