//! Text storage for span payloads, so one span type serves heap and no-heap builds.

/// The buffer is full: the write did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// A growable-or-fixed UTF-8 buffer holding a span's name or encoded payload.
///
/// Implemented for [`heapless::String`] (fixed capacity, no allocator) and,
/// with the `alloc` feature, for `alloc::string::String`. An empty buffer must
/// not allocate: a span with no payload stays free of heap traffic.
pub trait Buffer: Default {
    /// The contents.
    fn as_str(&self) -> &str;
    /// Appends `s` whole, or nothing and `Err(Full)`.
    fn push_str(&mut self, s: &str) -> Result<(), Full>;
    /// Inserts `s` at the start, or nothing and `Err(Full)`.
    fn prepend(&mut self, s: &str) -> Result<(), Full>;
    /// Shortens to `len` bytes; `len` must be on a character boundary.
    fn truncate(&mut self, len: usize);
    /// Most bytes this buffer can ever hold.
    fn max_len(&self) -> usize;

    /// Makes room for `additional` more bytes ahead of time, if the buffer
    /// grows (a hint; fixed buffers ignore it).
    fn reserve(&mut self, additional: usize) {
        let _ = additional;
    }

    /// Length in bytes.
    fn len(&self) -> usize {
        self.as_str().len()
    }

    /// Whether the buffer is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Empties the buffer.
    fn clear(&mut self) {
        self.truncate(0);
    }
}

impl<const N: usize> Buffer for heapless::String<N> {
    fn as_str(&self) -> &str {
        heapless::String::as_str(self)
    }
    fn push_str(&mut self, s: &str) -> Result<(), Full> {
        heapless::String::push_str(self, s).map_err(|_| Full)
    }
    fn prepend(&mut self, s: &str) -> Result<(), Full> {
        self.insert_str(0, s).map_err(|_| Full)
    }
    fn truncate(&mut self, len: usize) {
        heapless::String::truncate(self, len);
    }
    fn max_len(&self) -> usize {
        N
    }
}

#[cfg(feature = "alloc")]
impl Buffer for alloc::string::String {
    fn as_str(&self) -> &str {
        self
    }
    fn push_str(&mut self, s: &str) -> Result<(), Full> {
        self.try_reserve(s.len()).map_err(|_| Full)?;
        alloc::string::String::push_str(self, s);
        Ok(())
    }
    fn prepend(&mut self, s: &str) -> Result<(), Full> {
        self.try_reserve(s.len()).map_err(|_| Full)?;
        self.insert_str(0, s);
        Ok(())
    }
    fn truncate(&mut self, len: usize) {
        alloc::string::String::truncate(self, len);
    }
    fn max_len(&self) -> usize {
        usize::MAX
    }
    fn reserve(&mut self, additional: usize) {
        let _ = self.try_reserve(additional);
    }
}

/// The longest prefix of `s` that has at most `max_chars` characters.
pub(crate) fn char_prefix(s: &str, max_chars: usize) -> (&str, bool) {
    if s.len() <= max_chars {
        return (s, false);
    }
    match s.char_indices().nth(max_chars) {
        Some((at, _)) => (&s[..at], true),
        None => (s, false),
    }
}

/// The longest prefix of `s` of at most `max_bytes` bytes ending on a character boundary.
pub(crate) fn byte_prefix(s: &str, max_bytes: usize) -> &str {
    if s.len() <= max_bytes {
        return s;
    }
    let mut at = max_bytes;
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    &s[..at]
}
