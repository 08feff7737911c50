//! A JSON writer that is total over serde's data model.
//!
//! `serde-json-core` renders numbers here, but its serializer cannot carry
//! arbitrary user values: it panics on `char`, tuple variants and
//! `Error::custom`, and writes invalid JSON for non-string map keys. This
//! writer accepts every value `Serialize` can describe and always emits
//! valid JSON or a typed error: control characters escaped, U+0000 (which the
//! server's PostgreSQL database cannot store) replaced by U+FFFD, non-finite
//! floats as `null`, map keys stringified where JSON allows only strings,
//! and nothing nested deeper than [`MAX_DEPTH`].

use core::fmt;

use serde::ser::{self, Serialize};

use crate::buffer::{Buffer, Full};

/// Why a value could not be written as JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonError {
    /// The output reached its size limit.
    Full,
    /// A map key was a sequence, map or other value with no string form.
    KeyMustBeString,
    /// The value's `Serialize` implementation reported an error.
    Custom,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JsonError::Full => "the JSON output reached its size limit",
            JsonError::KeyMustBeString => "a map key has no string form",
            JsonError::Custom => "the value's Serialize implementation failed",
        })
    }
}

impl ser::StdError for JsonError {}

impl ser::Error for JsonError {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        JsonError::Custom
    }
}

/// Most levels of arrays and objects nested in a value that the writer
/// writes (of input, output, a metadata value or event attributes).
///
/// An array or object nested deeper (one that already has `MAX_DEPTH` arrays
/// and objects around it) is written as the string [`DEPTH_MARKER`]
/// instead, without a look inside it: no value, however deep, can make the
/// writer overflow the stack. The field is then marked truncated, as one
/// over its size limit is. The cut also keeps a request within the 128
/// levels that serde_json (and so [`crate::encode`]'s readers, the server
/// among them) parses: a request adds at most 7 levels around a value.
/// `Some`s and newtype structs, which add no level, are followed at most
/// [`MAX_WRAPPERS`] deep (all those around a value count, whatever lies
/// between them), then cut the same way.
pub const MAX_DEPTH: usize = 64;

/// Most `Some`s and newtype structs the writer has open at once, around a
/// value or a map key, before it writes [`DEPTH_MARKER`] instead.
pub const MAX_WRAPPERS: usize = 4 * MAX_DEPTH;

/// The string that stands in for an array or object nested deeper than
/// [`MAX_DEPTH`].
pub const DEPTH_MARKER: &str = "vigil.truncated: nested deeper than 64";

/// What the writer changed in a value so that the server stores it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changes(u8);

impl Changes {
    /// A U+0000 was written as U+FFFD, the replacement character.
    pub const NUL_REPLACED: Changes = Changes(1);
    /// An array or object nested deeper than [`MAX_DEPTH`] (or wrappers
    /// beyond [`MAX_WRAPPERS`]) was written as [`DEPTH_MARKER`].
    pub const DEPTH_CUT: Changes = Changes(2);

    /// Whether nothing was changed.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every change in `other` was made.
    pub const fn contains(self, other: Changes) -> bool {
        self.0 & other.0 == other.0
    }

    /// Both sets together.
    #[must_use]
    pub const fn union(self, other: Changes) -> Changes {
        Changes(self.0 | other.0)
    }
}

impl From<Full> for JsonError {
    fn from(_: Full) -> Self {
        JsonError::Full
    }
}

/// Where JSON text goes.
pub(crate) trait Output {
    fn put(&mut self, s: &str) -> Result<(), Full>;

    /// Hears of a change made to the value written (most outputs ignore it).
    #[inline]
    fn note(&mut self, _change: Changes) {}

    /// Whether U+0000 is kept (escaped) rather than replaced: for text that
    /// is parsed back and written again, which replaces it then.
    #[inline]
    fn keeps_nul(&self) -> bool {
        false
    }
}

/// A [`Buffer`] that may grow only up to `limit` bytes.
pub(crate) struct Limited<'a, B> {
    pub(crate) buf: &'a mut B,
    pub(crate) limit: usize,
    /// What was changed in the text written so far.
    pub(crate) changes: Changes,
    pub(crate) keep_nul: bool,
}

impl<'a, B> Limited<'a, B> {
    pub(crate) fn new(buf: &'a mut B, limit: usize) -> Self {
        Limited {
            buf,
            limit,
            changes: Changes::default(),
            keep_nul: false,
        }
    }
}

impl<B: Buffer> Output for Limited<'_, B> {
    #[inline]
    fn put(&mut self, s: &str) -> Result<(), Full> {
        if self.buf.len() + s.len() > self.limit {
            return Err(Full);
        }
        self.buf.push_str(s)
    }

    fn note(&mut self, change: Changes) {
        self.changes = self.changes.union(change);
    }

    fn keeps_nul(&self) -> bool {
        self.keep_nul
    }
}

/// A caller-provided byte slice filled from the front.
pub(crate) struct SliceOutput<'a> {
    pub(crate) buf: &'a mut [u8],
    pub(crate) len: usize,
}

impl Output for SliceOutput<'_> {
    // Inlined, a constant piece becomes a few moves instead of a `memcpy` call.
    #[inline]
    fn put(&mut self, s: &str) -> Result<(), Full> {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(Full)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The escape scan on x86-64.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod sse2 {
    use core::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };

    /// `0xff` in each byte of `block` that is a control character, `"` or
    /// `\\`.
    #[inline(always)]
    fn flags(block: &[u8; 16]) -> __m128i {
        // SAFETY: SSE2 is enabled for this target (the module's `cfg`), and
        // the unaligned load reads the 16 bytes of `block`.
        unsafe {
            let v = _mm_loadu_si128(block.as_ptr().cast());
            let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
            // Below 0x20, unsigned: the byte is its own minimum with 0x1f.
            let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
            _mm_or_si128(_mm_or_si128(quote, backslash), control)
        }
    }

    /// Bit `n` set if byte `n` of the first 16 of `block` is escaped.
    #[inline(always)]
    pub(super) fn escape_mask(block: &[u8]) -> u32 {
        let Some(block) = block.first_chunk::<16>() else {
            return 0;
        };
        // SAFETY: SSE2 is enabled for this target (the module's `cfg`).
        unsafe { _mm_movemask_epi8(flags(block)) as u32 }
    }

    /// Whether any of the first 64 bytes of `block` is escaped: one test for
    /// four loads.
    #[inline(always)]
    pub(super) fn any_escaped_in_64(block: &[u8]) -> bool {
        let Some(block) = block.first_chunk::<64>() else {
            return true;
        };
        let ([a, b, c, d], []) = block.as_chunks::<16>() else {
            return true;
        };
        // SAFETY: SSE2 is enabled for this target (the module's `cfg`).
        unsafe {
            let any = _mm_or_si128(
                _mm_or_si128(flags(a), flags(b)),
                _mm_or_si128(flags(c), flags(d)),
            );
            _mm_movemask_epi8(any) != 0
        }
    }
}

/// Writes `s` as a JSON string literal, quotes included.
pub(crate) fn write_str<O: Output + ?Sized>(out: &mut O, s: &str) -> Result<(), Full> {
    out.put("\"")?;
    write_str_body(out, s)?;
    out.put("\"")
}

/// Whether `b` cannot stand as it is in a JSON string: a control
/// character, `"` or `\\`.
#[inline(always)]
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Writes the escaped contents of a JSON string literal, without quotes.
///
/// Clean stretches (no control character, `"` or `\\`) are skipped 64 bytes
/// at a time with SSE2 on x86-64 (32 at a time with word-wide bit tests
/// elsewhere), and copied out in one piece; only the bytes around an escape
/// go one by one.
/// U+0000, a control character, is written as U+FFFD (the server's
/// PostgreSQL database cannot store U+0000) and noted to `out`.
pub(crate) fn write_str_body<O: Output + ?Sized>(out: &mut O, s: &str) -> Result<(), Full> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    /// Non-zero if any byte of the 8 in `chunk` is a control character, `"`
    /// or `\\` (the classic "has a byte below n" tests; a borrow can flag a
    /// later byte too, but only in a word that really holds one).
    #[inline(always)]
    fn escape_bits(chunk: &[u8]) -> u64 {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x;
        let quote = w ^ (ONES * u64::from(b'"'));
        let backslash = w ^ (ONES * u64::from(b'\\'));
        (below(w, 0x20) | below(quote, 1) | below(backslash, 1)) & HIGHS
    }
    let bytes = s.as_bytes();
    // Short and clean, as keys and most short values are: a test a byte and
    // one piece, without the setup of the scans below (a six-byte key cost
    // 174 instructions through them, 133 this way).
    if bytes.len() <= 16 && !bytes.iter().copied().any(needs_escape) {
        return out.put(s);
    }
    let mut run = 0;
    let mut i = 0;
    loop {
        // With SSE2 (every x86-64 has it): 64 bytes a test while they are
        // clean, then 16 at a time, which also says where the escape is.
        #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
        let found = loop {
            if bytes
                .get(i..i + 64)
                .is_some_and(|b| !sse2::any_escaped_in_64(b))
            {
                i += 64;
                continue;
            }
            let Some(block) = bytes.get(i..i + 16) else {
                break None;
            };
            match sse2::escape_mask(block) {
                0 => i += 16,
                mask => break Some(i + mask.trailing_zeros() as usize),
            }
        };
        #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
        let found = {
            while let Some(block) = bytes.get(i..i + 32) {
                if block.chunks_exact(8).fold(0, |acc, c| acc | escape_bits(c)) != 0 {
                    break;
                }
                i += 32;
            }
            None
        };
        let next = match (found, bytes.get(i..i + 8)) {
            (Some(next), _) => next,
            (None, Some(chunk)) => match escape_bits(chunk) {
                0 => {
                    i += 8;
                    continue;
                }
                // The lowest flagged byte is always a real one.
                bits => i + (bits.trailing_zeros() / 8) as usize,
            },
            (None, None) => {
                let tail = bytes.get(i..).unwrap_or_default();
                match tail.iter().position(|&b| needs_escape(b)) {
                    Some(n) => i + n,
                    None => break,
                }
            }
        };
        let Some(&b) = bytes.get(next) else { break };
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0 if !out.keeps_nul() => {
                out.note(Changes::NUL_REPLACED);
                "\u{fffd}"
            }
            _ => "",
        };
        // `next` is at an ASCII byte, hence on a character boundary.
        out.put(&s[run..next])?;
        if escape.is_empty() {
            let code = [
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ];
            out.put(core::str::from_utf8(&code).unwrap_or_default())?;
        } else {
            out.put(escape)?;
        }
        i = next + 1;
        run = i;
    }
    out.put(&s[run..])
}

/// Serializes `value` as JSON into `out`.
pub(crate) fn write_value<O, T>(out: &mut O, value: &T) -> Result<(), JsonError>
where
    O: Output,
    T: Serialize + ?Sized,
{
    value.serialize(&mut Writer {
        out,
        depth: 0,
        wrappers: 0,
    })
}

struct Writer<'a, O> {
    out: &'a mut O,
    /// Arrays and objects open around what is written now.
    depth: usize,
    /// `Some`s and newtypes open around it.
    wrappers: usize,
}

impl<'a, O: Output> Writer<'a, O> {
    /// Opens an array or object (`open`; inside an object keyed `variant`
    /// when there is one) that `close` ends, unless it would be nested
    /// deeper than [`MAX_DEPTH`]: then the marker is written, and the
    /// compound returned writes nothing more and looks at nothing it is given.
    fn open<'w>(
        &'w mut self,
        variant: Option<&str>,
        open: &str,
        close: &'static str,
    ) -> Result<Compound<'w, 'a, O>, JsonError> {
        let levels = 1 + usize::from(variant.is_some());
        if !self.enter(levels)? {
            return Ok(Compound {
                w: self,
                first: true,
                close: "",
                levels: 0,
                skip: true,
            });
        }
        if let Some(variant) = variant {
            self.put("{")?;
            self.string(variant)?;
            self.put(":")?;
        }
        self.put(open)?;
        Ok(Compound {
            w: self,
            first: true,
            close,
            levels,
            skip: false,
        })
    }

    fn put(&mut self, s: &str) -> Result<(), JsonError> {
        Ok(self.out.put(s)?)
    }

    /// Writes [`DEPTH_MARKER`] in place of what is too deep to write.
    #[cold]
    fn cut(&mut self) -> Result<(), JsonError> {
        self.out.note(Changes::DEPTH_CUT);
        self.string(DEPTH_MARKER)
    }

    /// Opens `levels` of arrays and objects: `false`, with the marker
    /// written, if that would nest them deeper than [`MAX_DEPTH`].
    fn enter(&mut self, levels: usize) -> Result<bool, JsonError> {
        if self.depth + levels > MAX_DEPTH {
            self.cut()?;
            return Ok(false);
        }
        self.depth += levels;
        Ok(true)
    }

    /// Writes what a `Some` or a newtype holds, unless too many of them are
    /// open already.
    fn wrapped<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), JsonError> {
        if self.wrappers >= MAX_WRAPPERS {
            return self.cut();
        }
        self.wrappers += 1;
        let result = value.serialize(&mut *self);
        self.wrappers -= 1;
        result
    }

    fn number<T: Serialize>(&mut self, v: T) -> Result<(), JsonError> {
        // serde-json-core renders integers and floats (ryu), with non-finite
        // floats as `null`; 40 bytes hold any of them.
        let mut tmp = [0u8; 40];
        let len = serde_json_core::to_slice(&v, &mut tmp).map_err(|_| JsonError::Full)?;
        let text = core::str::from_utf8(&tmp[..len]).map_err(|_| JsonError::Custom)?;
        self.put(text)
    }

    fn string(&mut self, s: &str) -> Result<(), JsonError> {
        Ok(write_str(self.out, s)?)
    }

    fn float(&mut self, v: f64) -> Result<(), JsonError> {
        match short_decimal(v, &mut [0; SHORT_DECIMAL]) {
            Some(text) => self.put(text),
            None => self.number(v),
        }
    }
}

/// Room for what [`short_decimal`] writes: a sign, 13 digits and a point.
const SHORT_DECIMAL: usize = 16;

/// `v` as ryu (and so serde_json) writes it, the shortest decimal that reads
/// back as `v`, for the values spans mostly hold (a temperature, a cost, a
/// score: at least 10^-4 and below 10^9 in magnitude, with at most 9 digits
/// after the point and 13 in all); `None` for the rest. Found by trying 0
/// to 9 digits after the point: the first count at which the nearest
/// decimal reads back as `v` gives the fewest digits, and in this range ryu
/// writes that decimal in plain notation. A tenth of ryu's instructions for
/// `0.2`.
fn short_decimal(v: f64, buf: &mut [u8; SHORT_DECIMAL]) -> Option<&str> {
    let magnitude = v.abs();
    if !(1e-4..1e9).contains(&magnitude) {
        return None;
    }
    let mut scale = 1.0;
    for fraction_digits in 0..=9 {
        let scaled = magnitude * scale;
        // Far below 2^53, so `scaled` is within a hundredth of the exact
        // product and rounds to the decimal nearest `v`.
        if scaled >= 1e13 {
            return None;
        }
        // Rounded half up (`round` is a call into libm without SSE4.1).
        let digits = (scaled + 0.5) as u64;
        if digits as f64 / scale == magnitude {
            return Some(write_decimal(buf, v < 0.0, digits, fraction_digits));
        }
        scale *= 10.0;
    }
    None
}

/// `digits` with a point before its last `fraction_digits` (".0" if none),
/// after a `-` if `negative`, written at the end of `buf`.
fn write_decimal(
    buf: &mut [u8; SHORT_DECIMAL],
    negative: bool,
    mut digits: u64,
    fraction_digits: usize,
) -> &str {
    let mut at = buf.len();
    let mut put = |b: u8| {
        at = at.saturating_sub(1);
        if let Some(slot) = buf.get_mut(at) {
            *slot = b;
        }
    };
    if fraction_digits == 0 {
        put(b'0');
        put(b'.');
    }
    let mut written = 0;
    // At least one digit before the point, then the sign.
    while written <= fraction_digits || digits > 0 {
        if written == fraction_digits && fraction_digits > 0 {
            put(b'.');
        }
        put(b'0' + (digits % 10) as u8);
        digits /= 10;
        written += 1;
    }
    if negative {
        put(b'-');
    }
    // ASCII digits, a point and a sign.
    core::str::from_utf8(buf.get(at..).unwrap_or_default()).unwrap_or_default()
}

/// A JSON array or object being written; `close` ends it.
pub(crate) struct Compound<'w, 'a, O> {
    w: &'w mut Writer<'a, O>,
    first: bool,
    close: &'static str,
    /// Levels of nesting it opened.
    levels: usize,
    /// Too deep: the marker stands for it, and its contents are skipped.
    skip: bool,
}

impl<O: Output> Compound<'_, '_, O> {
    fn separator(&mut self) -> Result<(), JsonError> {
        if !core::mem::take(&mut self.first) {
            self.w.put(",")?;
        }
        Ok(())
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), JsonError> {
        if self.skip {
            return Ok(());
        }
        self.separator()?;
        value.serialize(&mut *self.w)
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), JsonError> {
        if self.skip {
            return Ok(());
        }
        self.separator()?;
        self.w.string(key)?;
        self.w.put(":")?;
        value.serialize(&mut *self.w)
    }

    fn finish(self) -> Result<(), JsonError> {
        self.w.depth -= self.levels;
        self.w.put(self.close)
    }
}

impl<'w, 'a, O: Output> ser::Serializer for &'w mut Writer<'a, O> {
    type Ok = ();
    type Error = JsonError;
    type SerializeSeq = Compound<'w, 'a, O>;
    type SerializeTuple = Compound<'w, 'a, O>;
    type SerializeTupleStruct = Compound<'w, 'a, O>;
    type SerializeTupleVariant = Compound<'w, 'a, O>;
    type SerializeMap = Compound<'w, 'a, O>;
    type SerializeStruct = Compound<'w, 'a, O>;
    type SerializeStructVariant = Compound<'w, 'a, O>;

    fn serialize_bool(self, v: bool) -> Result<(), JsonError> {
        self.put(if v { "true" } else { "false" })
    }
    fn serialize_i8(self, v: i8) -> Result<(), JsonError> {
        self.number(v)
    }
    fn serialize_i16(self, v: i16) -> Result<(), JsonError> {
        self.number(v)
    }
    fn serialize_i32(self, v: i32) -> Result<(), JsonError> {
        self.number(v)
    }
    fn serialize_i64(self, v: i64) -> Result<(), JsonError> {
        self.number(v)
    }
    fn serialize_i128(self, v: i128) -> Result<(), JsonError> {
        match i64::try_from(v) {
            Ok(v) => self.number(v),
            Err(_) => self.collect_str(&v),
        }
    }
    fn serialize_u8(self, v: u8) -> Result<(), JsonError> {
        self.number(v)
    }
    fn serialize_u16(self, v: u16) -> Result<(), JsonError> {
        self.number(v)
    }
    fn serialize_u32(self, v: u32) -> Result<(), JsonError> {
        self.number(v)
    }
    fn serialize_u64(self, v: u64) -> Result<(), JsonError> {
        self.number(v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), JsonError> {
        match u64::try_from(v) {
            Ok(v) => self.number(v),
            Err(_) => self.collect_str(&v),
        }
    }
    fn serialize_f32(self, v: f32) -> Result<(), JsonError> {
        self.number(v)
    }
    fn serialize_f64(self, v: f64) -> Result<(), JsonError> {
        self.float(v)
    }
    fn serialize_char(self, v: char) -> Result<(), JsonError> {
        self.string(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), JsonError> {
        self.string(v)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), JsonError> {
        let mut seq = ser::Serializer::serialize_seq(self, Some(v.len()))?;
        for b in v {
            seq.element(b)?;
        }
        seq.finish()
    }
    fn serialize_none(self) -> Result<(), JsonError> {
        self.put("null")
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), JsonError> {
        self.wrapped(value)
    }
    fn serialize_unit(self) -> Result<(), JsonError> {
        self.put("null")
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), JsonError> {
        self.put("null")
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), JsonError> {
        self.string(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), JsonError> {
        self.wrapped(value)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), JsonError> {
        if !self.enter(1)? {
            return Ok(());
        }
        self.put("{")?;
        self.string(variant)?;
        self.put(":")?;
        value.serialize(&mut *self)?;
        self.depth -= 1;
        self.put("}")
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, JsonError> {
        self.open(None, "[", "]")
    }
    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, JsonError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, JsonError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, JsonError> {
        self.open(Some(variant), "[", "]}")
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, JsonError> {
        self.open(None, "{", "}")
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, JsonError> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, JsonError> {
        self.open(Some(variant), "{", "}}")
    }
    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<(), JsonError> {
        struct Escaping<'o, O>(&'o mut O);
        impl<O: Output> fmt::Write for Escaping<'_, O> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                write_str_body(self.0, s).map_err(|_| fmt::Error)
            }
        }
        self.put("\"")?;
        fmt::write(&mut Escaping(self.out), format_args!("{value}"))
            .map_err(|_| JsonError::Full)?;
        self.put("\"")
    }
}

macro_rules! compound_impl {
    ($trait:ident, $method:ident) => {
        impl<O: Output> ser::$trait for Compound<'_, '_, O> {
            type Ok = ();
            type Error = JsonError;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), JsonError> {
                self.element(value)
            }
            fn end(self) -> Result<(), JsonError> {
                self.finish()
            }
        }
    };
}
compound_impl!(SerializeSeq, serialize_element);
compound_impl!(SerializeTuple, serialize_element);
compound_impl!(SerializeTupleStruct, serialize_field);
compound_impl!(SerializeTupleVariant, serialize_field);

impl<O: Output> ser::SerializeStruct for Compound<'_, '_, O> {
    type Ok = ();
    type Error = JsonError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), JsonError> {
        self.field(key, value)
    }
    fn end(self) -> Result<(), JsonError> {
        self.finish()
    }
}

impl<O: Output> ser::SerializeStructVariant for Compound<'_, '_, O> {
    type Ok = ();
    type Error = JsonError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), JsonError> {
        self.field(key, value)
    }
    fn end(self) -> Result<(), JsonError> {
        self.finish()
    }
}

impl<O: Output> ser::SerializeMap for Compound<'_, '_, O> {
    type Ok = ();
    type Error = JsonError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), JsonError> {
        if self.skip {
            return Ok(());
        }
        self.separator()?;
        key.serialize(KeyWriter(&mut *self.w))?;
        self.w.put(":")
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), JsonError> {
        if self.skip {
            return Ok(());
        }
        value.serialize(&mut *self.w)
    }
    fn end(self) -> Result<(), JsonError> {
        self.finish()
    }
}

/// Writes a map key: strings as they are, scalars in their string form.
struct KeyWriter<'w, 'a, O>(&'w mut Writer<'a, O>);

impl<O: Output> KeyWriter<'_, '_, O> {
    /// Writes the key a `Some` or a newtype holds, unless too many of them
    /// are open already (then the marker is the key).
    fn wrapped<T: Serialize + ?Sized>(self, value: &T) -> Result<(), JsonError> {
        let w = self.0;
        if w.wrappers >= MAX_WRAPPERS {
            return w.cut();
        }
        w.wrappers += 1;
        let result = value.serialize(KeyWriter(&mut *w));
        w.wrappers -= 1;
        result
    }

    fn quoted<T: Serialize>(self, v: T) -> Result<(), JsonError> {
        self.0.put("\"")?;
        self.0.number(v)?;
        self.0.put("\"")
    }
}

type Impossible = ser::Impossible<(), JsonError>;

impl<O: Output> ser::Serializer for KeyWriter<'_, '_, O> {
    type Ok = ();
    type Error = JsonError;
    type SerializeSeq = Impossible;
    type SerializeTuple = Impossible;
    type SerializeTupleStruct = Impossible;
    type SerializeTupleVariant = Impossible;
    type SerializeMap = Impossible;
    type SerializeStruct = Impossible;
    type SerializeStructVariant = Impossible;

    fn serialize_bool(self, v: bool) -> Result<(), JsonError> {
        self.0.string(if v { "true" } else { "false" })
    }
    fn serialize_i8(self, v: i8) -> Result<(), JsonError> {
        self.quoted(v)
    }
    fn serialize_i16(self, v: i16) -> Result<(), JsonError> {
        self.quoted(v)
    }
    fn serialize_i32(self, v: i32) -> Result<(), JsonError> {
        self.quoted(v)
    }
    fn serialize_i64(self, v: i64) -> Result<(), JsonError> {
        self.quoted(v)
    }
    fn serialize_i128(self, v: i128) -> Result<(), JsonError> {
        self.collect_str(&v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), JsonError> {
        self.quoted(v)
    }
    fn serialize_u16(self, v: u16) -> Result<(), JsonError> {
        self.quoted(v)
    }
    fn serialize_u32(self, v: u32) -> Result<(), JsonError> {
        self.quoted(v)
    }
    fn serialize_u64(self, v: u64) -> Result<(), JsonError> {
        self.quoted(v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), JsonError> {
        self.collect_str(&v)
    }
    fn serialize_f32(self, v: f32) -> Result<(), JsonError> {
        self.quoted(v)
    }
    fn serialize_f64(self, v: f64) -> Result<(), JsonError> {
        self.quoted(v)
    }
    fn serialize_char(self, v: char) -> Result<(), JsonError> {
        self.0.string(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), JsonError> {
        self.0.string(v)
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<(), JsonError> {
        Err(JsonError::KeyMustBeString)
    }
    fn serialize_none(self) -> Result<(), JsonError> {
        Err(JsonError::KeyMustBeString)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), JsonError> {
        self.wrapped(value)
    }
    fn serialize_unit(self) -> Result<(), JsonError> {
        Err(JsonError::KeyMustBeString)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), JsonError> {
        Err(JsonError::KeyMustBeString)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), JsonError> {
        self.0.string(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), JsonError> {
        self.wrapped(value)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), JsonError> {
        Err(JsonError::KeyMustBeString)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Impossible, JsonError> {
        Err(JsonError::KeyMustBeString)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Impossible, JsonError> {
        Err(JsonError::KeyMustBeString)
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Impossible, JsonError> {
        Err(JsonError::KeyMustBeString)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Impossible, JsonError> {
        Err(JsonError::KeyMustBeString)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Impossible, JsonError> {
        Err(JsonError::KeyMustBeString)
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Impossible, JsonError> {
        Err(JsonError::KeyMustBeString)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Impossible, JsonError> {
        Err(JsonError::KeyMustBeString)
    }
    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<(), JsonError> {
        ser::Serializer::collect_str(self.0, value)
    }
}
