//! Locking that survives a panic elsewhere.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, ignoring poisoning: the SDK's mutexes guard state that a
/// panic in the middle of any use leaves whole, so another thread's panic
/// must not turn every later use into one.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
