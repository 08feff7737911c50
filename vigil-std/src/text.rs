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

use std::alloc::{self, Layout};
use std::cell::RefCell;
use std::fmt;
use std::ptr::NonNull;
use std::sync::Mutex;

use vigil_core::{Buffer, Full, Name};

use crate::sync::lock;

/// Buffers moved between a thread and the depot at a time.
const MAGAZINE: usize = 64;
/// Largest buffer capacity worth keeping.
const MAX_RECYCLED: usize = 4096;
/// Most magazines the depot holds; beyond that, returned buffers are freed.
const DEPOT: usize = 16;

static FULL: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());

thread_local! {
    static CACHE: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// The start of a [`Block`]'s allocation; the text follows it.
#[repr(C)]
struct Header {
    len: usize,
    cap: usize,
}

/// One allocation holding a length, a capacity and then `cap` bytes whose
/// first `len` are UTF-8: a `String` that is one pointer wide, so a span with
/// four empty payloads stays small (each span's record is copied into the
/// queue). Freed when dropped.
struct Block(NonNull<Header>);

// SAFETY: a `Block` owns its allocation alone, like a `Box`.
unsafe impl Send for Block {}
// SAFETY: shared references only read.
unsafe impl Sync for Block {}

impl Block {
    fn layout(cap: usize) -> Option<Layout> {
        let bytes = Layout::array::<u8>(cap).ok()?;
        Some(Layout::new::<Header>().extend(bytes).ok()?.0.pad_to_align())
    }

    /// A block with room for `cap` bytes; `Full` if the allocator refuses.
    fn with_capacity(cap: usize) -> Result<Block, Full> {
        let layout = Block::layout(cap).ok_or(Full)?;
        // SAFETY: the layout is never zero-sized (it holds a header).
        let header = NonNull::new(unsafe { alloc::alloc(layout) }.cast::<Header>()).ok_or(Full)?;
        // SAFETY: freshly allocated, aligned for `Header`.
        unsafe { header.as_ptr().write(Header { len: 0, cap }) };
        Ok(Block(header))
    }

    #[inline]
    fn header(&self) -> &Header {
        // SAFETY: the header is initialised for the block's whole life.
        unsafe { self.0.as_ref() }
    }

    #[inline]
    fn data(&self) -> *mut u8 {
        // SAFETY: the bytes start right after the header, inside the allocation.
        unsafe { self.0.as_ptr().add(1).cast::<u8>() }
    }

    #[inline]
    fn as_str(&self) -> &str {
        let len = self.header().len;
        // SAFETY: the first `len` bytes are initialised UTF-8: only whole
        // `&str`s are copied in, and cuts fall on character boundaries.
        unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(self.data(), len)) }
    }

    #[inline]
    fn set_len(&mut self, len: usize) {
        // SAFETY: the header is ours to write; callers keep `len <= cap`.
        unsafe { self.0.as_mut().len = len };
    }

    /// Makes room for `additional` more bytes, doubling (at least).
    #[inline]
    fn reserve(&mut self, additional: usize) -> Result<(), Full> {
        let Header { len, cap } = *self.header();
        let need = len.checked_add(additional).ok_or(Full)?;
        if need <= cap {
            return Ok(());
        }
        self.grow(need)
    }

    #[cold]
    fn grow(&mut self, need: usize) -> Result<(), Full> {
        let cap = self.header().cap;
        let new_cap = need.max(cap.saturating_mul(2)).max(64);
        let (old, new) = (
            Block::layout(cap).ok_or(Full)?,
            Block::layout(new_cap).ok_or(Full)?,
        );
        // SAFETY: `self.0` was allocated with `old`; `new` has its alignment
        // and a non-zero size. On failure the old block is left intact.
        let moved = unsafe { alloc::realloc(self.0.as_ptr().cast(), old, new.size()) };
        self.0 = NonNull::new(moved.cast::<Header>()).ok_or(Full)?;
        // SAFETY: as above, the header moved with the block.
        unsafe { self.0.as_mut().cap = new_cap };
        Ok(())
    }

    /// Appends `s`: the common case, one copy (JSON is written piece by piece).
    #[inline]
    fn push(&mut self, s: &str) -> Result<(), Full> {
        self.reserve(s.len())?;
        let len = self.header().len;
        // SAFETY: `reserve` made room for `len + s.len()` bytes.
        unsafe { std::ptr::copy_nonoverlapping(s.as_ptr(), self.data().add(len), s.len()) };
        self.set_len(len + s.len());
        Ok(())
    }

    /// Copies `s` in at byte `at` (a character boundary), shifting what follows.
    fn insert(&mut self, at: usize, s: &str) -> Result<(), Full> {
        self.reserve(s.len())?;
        let len = self.header().len;
        let at = at.min(len);
        // SAFETY: `reserve` made room for `len + s.len()` bytes; the tail
        // moves within the allocation (`copy` allows overlap).
        unsafe {
            let data = self.data();
            std::ptr::copy(data.add(at), data.add(at + s.len()), len - at);
            std::ptr::copy_nonoverlapping(s.as_ptr(), data.add(at), s.len());
        }
        self.set_len(len + s.len());
        Ok(())
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        if let Some(layout) = Block::layout(self.header().cap) {
            // SAFETY: allocated with this very layout.
            unsafe { alloc::dealloc(self.0.as_ptr().cast(), layout) };
        }
    }
}

/// An empty buffer with room for at least `min` bytes, from this thread's
/// cache, else a magazine from the depot, else the allocator; `Full` when
/// the allocator refuses.
fn take(min: usize) -> Result<Block, Full> {
    let recycled = CACHE
        .try_with(|cache| {
            let mut cache = cache.try_borrow_mut().ok()?;
            if cache.is_empty() {
                *cache = lock(&FULL).pop()?;
            }
            // Prefer one of the last few that fits already, so mixed sizes
            // settle instead of reallocating.
            let fits = cache
                .iter()
                .rev()
                .take(4)
                .position(|b| b.header().cap >= min);
            let at = cache.len().checked_sub(1 + fits.unwrap_or(0))?;
            Some(cache.swap_remove(at))
        })
        .ok()
        .flatten();
    match recycled {
        Some(mut block) => {
            block.reserve(min)?;
            Ok(block)
        }
        // Whole powers of two, so a buffer fits many later payloads.
        None => Block::with_capacity(min.max(64).checked_next_power_of_two().unwrap_or(min)),
    }
}

/// Keeps `block` (emptied) for a later [`take`], or frees it.
fn give(mut block: Block) {
    if block.header().cap > MAX_RECYCLED {
        return;
    }
    block.set_len(0);
    let _ = CACHE.try_with(|cache| {
        let Ok(mut cache) = cache.try_borrow_mut() else {
            return;
        };
        if cache.capacity() == 0 {
            cache.reserve_exact(2 * MAGAZINE);
        }
        cache.push(block);
        if cache.len() == 2 * MAGAZINE {
            // Hand the older half to the depot for other threads.
            let magazine: Vec<Block> = cache.drain(..MAGAZINE).collect();
            let mut depot = lock(&FULL);
            if depot.len() < DEPOT {
                depot.push(magazine);
            }
        }
    });
}

/// A span's name or payload text (see the module docs): one pointer wide,
/// null while empty.
#[derive(Default)]
pub(crate) struct Text(Option<Block>);

/// A span name as stored in a record; an owned name's memory joins the
/// recycling when the span is done.
#[inline]
pub(crate) fn name(name: Name<String>) -> Name<Text> {
    match name {
        Name::Static(s) => Name::Static(s),
        Name::Owned(s) => Name::Owned(owned_name(&s)),
    }
}

#[cold]
fn owned_name(s: &str) -> Text {
    let mut text = Text::default();
    // Out of memory: the span keeps an empty name rather than fail.
    let _ = text.push_str(s);
    text
}

impl Text {
    #[inline]
    fn room(&mut self, additional: usize) -> Result<&mut Block, Full> {
        match &mut self.0 {
            Some(block) => {
                block.reserve(additional)?;
                Ok(block)
            }
            empty => Ok(empty.insert(take(additional)?)),
        }
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
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
        if let Some(block) = self.0.take() {
            give(block);
        }
    }
}

impl Buffer for Text {
    #[inline]
    fn as_str(&self) -> &str {
        self.0.as_ref().map_or("", Block::as_str)
    }
    #[inline]
    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |b| b.header().len)
    }
    #[inline]
    fn push_str(&mut self, s: &str) -> Result<(), Full> {
        match &mut self.0 {
            Some(block) => block.push(s),
            None => self.room(s.len())?.push(s),
        }
    }
    fn prepend(&mut self, s: &str) -> Result<(), Full> {
        self.room(s.len())?.insert(0, s)
    }
    fn truncate(&mut self, len: usize) {
        if let Some(block) = &mut self.0 {
            let text = block.as_str();
            if len < text.len() {
                // Never cut a character: back up to its start.
                let len = (0..=len)
                    .rev()
                    .find(|&i| text.is_char_boundary(i))
                    .unwrap_or(0);
                block.set_len(len);
            }
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

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_queued_span_takes_the_128_bytes_the_config_docs_say() {
        use vigil_core::{queue::Slot, Span};
        assert_eq!(std::mem::size_of::<Slot<Span<Text>>>(), 128);
    }

    /// Part of the one test below: the depot is shared by the whole process.
    fn text_behaves_like_a_string() {
        let mut t = Text::default();
        assert_eq!(std::mem::size_of::<Text>(), std::mem::size_of::<usize>());
        assert_eq!(t.as_str(), "");
        t.truncate(0);
        let mut model = String::new();
        // Growth across many reallocations, prepends that shift the text,
        // and cuts that must land on character boundaries.
        for i in 0..300 {
            let piece = if i % 3 == 0 { "é€😀" } else { "ab" };
            t.push_str(piece).unwrap();
            model.push_str(piece);
            if i % 50 == 0 {
                t.prepend("[").unwrap();
                model.insert(0, '[');
            }
        }
        assert_eq!(t.as_str(), model);
        let clone = t.clone();
        assert_eq!(clone.as_str(), model);
        assert_eq!(format!("{clone:?}"), format!("{model:?}"));
        // A cut inside the 4-byte emoji backs up to where it starts.
        let at = model.find('😀').unwrap();
        t.truncate(at + 2);
        assert_eq!(t.as_str(), &model[..at]);
        t.truncate(usize::MAX);
        assert_eq!(t.as_str(), &model[..at], "a longer length changes nothing");
        t.clear();
        assert!(t.is_empty());
        t.push_str("again").unwrap();
        assert_eq!(t.as_str(), "again");
    }

    // One test: the depot is shared by the whole process.
    #[test]
    fn text_is_a_string_whose_buffers_are_reused_on_the_thread_and_across_threads() {
        text_behaves_like_a_string();

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
        let mut big = Block::with_capacity(MAX_RECYCLED + 1).unwrap();
        big.insert(0, "x").unwrap();
        give(big);
        CACHE.with(|c| assert!(c.borrow().iter().all(|b| b.header().cap <= MAX_RECYCLED)));
    }
}
