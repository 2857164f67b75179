//! The handle registries: what C holds as a `qlm_client *`, `qlm_session *` or
//! `qlm_checkout *` is an id, never the address of a Rust value.
//!
//! Every id comes from one counter shared by all kinds and is never handed out twice, so a
//! handle used after it was freed, a handle of another kind and a forged pointer are all
//! simply not found: `QLM_ERR_BAD_HANDLE`, never a dangling dereference. The pointer's value
//! is the id, which C must not dereference (the types are opaque).
//!
//! A lookup returns an `Arc` and lets the lock go, so a slow call (a checkout waiting in a
//! queue) never holds the registry. Freeing removes the entry first (later calls with the
//! handle fail), then waits until calls still running on that value are done (see
//! [`Registry::take`]), so the value can be consumed (closed, checked in).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Distance between two ids, so that handles look like aligned addresses to tools and no
/// small integer (or NULL) is ever one.
const ID_STEP: u64 = 16;

/// The first id; ids below it are never handed out.
const FIRST_ID: u64 = 0x51_0000;

static NEXT_ID: AtomicU64 = AtomicU64::new(FIRST_ID);

/// How often [`Registry::take`] looks again whether the other calls on a value are done.
const TAKE_POLL: Duration = Duration::from_millis(5);

/// The live values of one kind, by id.
pub struct Registry<T> {
    entries: Mutex<Option<HashMap<u64, Arc<T>>>>,
}

impl<T> Registry<T> {
    /// An empty registry (usable in a `static`).
    pub const fn new() -> Registry<T> {
        Registry { entries: Mutex::new(None) }
    }

    fn lock(&self) -> MutexGuard<'_, Option<HashMap<u64, Arc<T>>>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `value`; returns its id, as C's pointer.
    pub fn insert(&self, value: T) -> *mut std::ffi::c_void {
        let id = NEXT_ID.fetch_add(ID_STEP, Ordering::Relaxed);
        self.lock().get_or_insert_with(HashMap::new).insert(id, Arc::new(value));
        id as usize as *mut std::ffi::c_void
    }

    /// The value whose id is `pointer`, if it is live.
    pub fn get<P>(&self, pointer: *const P) -> Option<Arc<T>> {
        let id = pointer as usize as u64;
        self.lock().as_ref().and_then(|entries| entries.get(&id).cloned())
    }

    /// Removes the value whose id is `pointer` and returns it once no other call holds it
    /// (calls that looked it up before the removal run to their end first).
    pub fn take<P>(&self, pointer: *const P) -> Option<T> {
        let id = pointer as usize as u64;
        let mut value = self.lock().as_mut().and_then(|entries| entries.remove(&id))?;
        loop {
            match Arc::try_unwrap(value) {
                Ok(value) => return Some(value),
                Err(shared) => {
                    value = shared;
                    std::thread::sleep(TAKE_POLL);
                }
            }
        }
    }

    /// How many values are live (for leak checks).
    pub fn live(&self) -> usize {
        self.lock().as_ref().map_or(0, HashMap::len)
    }
}

impl<T> Default for Registry<T> {
    fn default() -> Registry<T> {
        Registry::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_freed_id_forged_id_or_null_is_not_found() {
        let registry = Registry::<String>::new();
        let id = registry.insert("a".into());
        assert_eq!(registry.get(id).as_deref().map(String::as_str), Some("a"));
        assert_eq!(registry.take(id).as_deref(), Some("a"));
        assert!(registry.get(id).is_none(), "use after free");
        assert!(registry.take(id).is_none(), "double free");
        assert!(registry.get(std::ptr::null::<u8>()).is_none());
        assert!(registry.get((id as usize + 1) as *const u8).is_none(), "forged");
    }

    #[test]
    fn ids_are_never_reused_across_registries() {
        let (a, b) = (Registry::<u8>::new(), Registry::<u8>::new());
        let first = a.insert(1);
        let second = b.insert(2);
        assert_ne!(first, second);
        assert!(a.get(second).is_none(), "b's handle is not a's");
    }

    #[test]
    fn take_waits_for_calls_in_progress() {
        let registry = Arc::new(Registry::<u8>::new());
        let id = registry.insert(7) as usize;
        let held = registry.get(id as *const u8).expect("live");
        let taker = {
            let registry = registry.clone();
            std::thread::spawn(move || registry.take(id as *const u8))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(registry.get(id as *const u8).is_none(), "removed at once");
        assert!(!taker.is_finished(), "waits for the holder");
        drop(held);
        assert_eq!(taker.join().expect("no panic"), Some(7));
    }
}
