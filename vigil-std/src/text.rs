//! Span text whose memory is recycled from span to span.
//!
//! Spans are filled on application threads and dropped by the exporter
//! thread, so with a plain `String` every payload is an allocation on one
//! thread and a free on another: the allocator's per-thread caches never see
//! the memory come back, and glibc may even trim and re-fault its heap. Here
//! buffers are handed back instead: each thread keeps a small cache of empty
//! buffers, and the exporter returns them to application threads in whole
//! magazines through a shared depot, one lock per [`MAGAZINE`] buffers.
//!
//! What is kept is bounded: buffers above [`MAX_RECYCLED`] bytes (4 KiB) are
//! freed, each thread keeps at most two magazines (512 KiB at worst) and the
//! depot at most [`DEPOT`] (4 MiB at worst); a steady stream of spans with
//! payloads then allocates nothing on the application thread.

use std::cell::RefCell;
use std::sync::Mutex;

use vigil_core::{Buffer, Full, Name};

/// Buffers moved between a thread and the depot at a time.
const MAGAZINE: usize = 64;
/// Largest buffer capacity worth keeping.
const MAX_RECYCLED: usize = 4096;
/// Most magazines the depot holds; beyond that, returned buffers are freed.
const DEPOT: usize = 16;

/// A recycled buffer: the `String` and the box that makes [`Text`] one
/// pointer wide travel together.
type Block = Box<String>;

static FULL: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());

thread_local! {
    static CACHE: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer with room for at least `min` bytes, from this thread's
/// cache, else a magazine from the depot, else the allocator; `Full` when
/// the allocator refuses.
fn take(min: usize) -> Result<Block, Full> {
    let recycled = CACHE
        .try_with(|cache| {
            let mut cache = cache.try_borrow_mut().ok()?;
            if cache.is_empty() {
                *cache = crate::client::lock(&FULL).pop()?;
            }
            // Prefer one of the last few that fits already, so mixed sizes
            // settle instead of reallocating.
            let fits = cache.iter().rev().take(4).position(|s| s.capacity() >= min);
            let at = cache.len().checked_sub(1 + fits.unwrap_or(0))?;
            Some(cache.swap_remove(at))
        })
        .ok()
        .flatten();
    let mut s = recycled.unwrap_or_default();
    if s.capacity() < min {
        // Whole powers of two, so a buffer fits many later payloads.
        let want = min.max(64).checked_next_power_of_two().unwrap_or(min);
        s.try_reserve_exact(want)
            .or_else(|_| s.try_reserve_exact(min))
            .map_err(|_| Full)?;
    }
    Ok(s)
}

/// Keeps `s` (emptied) for a later [`take`], or frees it.
fn give(mut s: Block) {
    if s.capacity() == 0 || s.capacity() > MAX_RECYCLED {
        return;
    }
    s.clear();
    let _ = CACHE.try_with(|cache| {
        let Ok(mut cache) = cache.try_borrow_mut() else {
            return;
        };
        if cache.capacity() == 0 {
            cache.reserve_exact(2 * MAGAZINE);
        }
        cache.push(s);
        if cache.len() == 2 * MAGAZINE {
            // Hand the older half to the depot for other threads.
            let magazine: Vec<Block> = cache.drain(..MAGAZINE).collect();
            let mut depot = crate::client::lock(&FULL);
            if depot.len() < DEPOT {
                depot.push(magazine);
            }
        }
    });
}

/// A span's name or payload text (see the module docs): one pointer wide,
/// null while empty, so a record with four empty payloads stays small and
/// every span copies less.
#[derive(Debug, Default)]
pub(crate) struct Text(Option<Block>);

/// A span name as stored in a record; an owned name's memory joins the
/// recycling when the span is done.
pub(crate) fn name(name: Name<String>) -> Name<Text> {
    match name {
        Name::Static(s) => Name::Static(s),
        Name::Owned(s) => Name::Owned(Text(Some(Box::new(s)))),
    }
}

impl Text {
    fn room(&mut self, additional: usize) -> Result<&mut String, Full> {
        match &mut self.0 {
            Some(s) => {
                s.try_reserve(additional).map_err(|_| Full)?;
                Ok(s)
            }
            empty => Ok(empty.insert(take(additional)?)),
        }
    }
}

impl Clone for Text {
    fn clone(&self) -> Self {
        let mut copy = Text::default();
        let _ = copy.push_str(self.as_str());
        copy
    }
}

impl Drop for Text {
    #[inline]
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            give(s);
        }
    }
}

impl Buffer for Text {
    fn as_str(&self) -> &str {
        self.0.as_deref().map_or("", String::as_str)
    }
    fn push_str(&mut self, s: &str) -> Result<(), Full> {
        self.room(s.len())?.push_str(s);
        Ok(())
    }
    fn prepend(&mut self, s: &str) -> Result<(), Full> {
        self.room(s.len())?.insert_str(0, s);
        Ok(())
    }
    fn truncate(&mut self, len: usize) {
        if let Some(s) = &mut self.0 {
            s.truncate(len);
        }
    }
    fn max_len(&self) -> usize {
        usize::MAX
    }
    fn reserve(&mut self, additional: usize) {
        let _ = self.room(additional);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test: the depot is shared by the whole process.
    #[test]
    fn buffers_are_reused_on_the_thread_and_across_threads() {
        // On one thread: the memory of a dropped buffer serves the next one.
        let mut a = Text::default();
        a.push_str("some payload").unwrap();
        let ptr = a.as_str().as_ptr();
        drop(a);
        let mut b = Text::default();
        b.push_str("x").unwrap();
        assert_eq!(b.as_str().as_ptr(), ptr, "the same memory, reused");
        assert_eq!(b.as_str(), "x");

        // A thread that drops many buffers (the exporter) passes a magazine
        // of them to the depot, where a new thread finds them.
        let dropped: Vec<usize> = std::thread::spawn(|| {
            let texts: Vec<Text> = (0..2 * MAGAZINE)
                .map(|_| {
                    let mut t = Text::default();
                    t.push_str("payload").unwrap();
                    t
                })
                .collect();
            let ptrs = texts.iter().map(|t| t.as_str().as_ptr() as usize).collect();
            drop(texts);
            ptrs
        })
        .join()
        .unwrap();
        let reused = std::thread::spawn(|| {
            let mut t = Text::default();
            t.push_str("next span").unwrap();
            t.as_str().as_ptr() as usize
        })
        .join()
        .unwrap();
        assert!(
            dropped.contains(&reused),
            "a new thread drew from the depot"
        );

        // Big buffers are freed, not kept.
        let mut big = Block::new(String::with_capacity(MAX_RECYCLED + 1));
        big.push('x');
        give(big);
        CACHE.with(|c| assert!(c.borrow().iter().all(|s| s.capacity() <= MAX_RECYCLED)));
    }
}
