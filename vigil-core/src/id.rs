//! Trace and span identifiers, and the generator that makes them.
//!
//! Both are 16 random bytes in the UUIDv4 layout, written on the wire as 32
//! lowercase hex digits (a UUID without dashes), which is what the Vigil
//! server's 64-character id columns expect.

use core::fmt;

use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name([u8; 16]);

        impl $name {
            /// The id with these bytes.
            pub const fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(bytes)
            }

            /// The id's bytes.
            pub const fn to_bytes(self) -> [u8; 16] {
                self.0
            }

            /// The id as 32 lowercase hex digits, written into `buf`.
            pub fn to_hex(self, buf: &mut [u8; 32]) -> &str {
                Uuid::from_bytes(self.0).simple().encode_lower(buf)
            }

            /// Parses 32 hex digits (either case); `None` for anything else.
            pub fn parse_hex(text: &str) -> Option<Self> {
                if text.len() != 32 {
                    return None;
                }
                Uuid::try_parse(text).ok().map(|id| Self(id.into_bytes()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.to_hex(&mut [0; 32]))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }
    };
}

id_type!(
    /// Identifies a trace: every span of one trace carries the same `TraceId`.
    TraceId
);
id_type!(
    /// Identifies a span, unique across all traces.
    SpanId
);

/// Makes random ids from a seed the caller supplies.
///
/// The core has no entropy source of its own: `std` code seeds one generator
/// per thread from the operating system, embedded code from its hardware RNG.
/// The generator is `wyrand` (64-bit state, one multiply per 64 bits), which is
/// fast and statistically sound but **not** cryptographic; ids are not secrets.
///
/// ```
/// use vigil_core::IdGenerator;
///
/// let mut ids = IdGenerator::from_seed(0x5eed);
/// let (a, b) = (ids.span_id(), ids.span_id());
/// assert_ne!(a, b);
/// assert_eq!(a.to_string().len(), 32);
/// ```
#[derive(Clone, Debug)]
pub struct IdGenerator {
    state: u64,
}

impl IdGenerator {
    /// A generator whose sequence is determined by `seed`.
    pub const fn from_seed(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.state) * u128::from(self.state ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    }

    /// 16 random bytes with the UUIDv4 version and variant bits set, worked
    /// on as two words: byte-wise edits make the compiler split the id into
    /// bytes wherever it is copied.
    #[inline(always)]
    fn uuid_bytes(&mut self) -> [u8; 16] {
        // Byte 6 is bits 48-55 of the first word (little-endian); its high
        // nibble holds the version, 4.
        let first = (self.next_u64() & !(0xf0 << 48)) | (0x40 << 48);
        // Byte 8 is the low byte of the second word; its top two bits hold
        // the variant, 0b10.
        let second = (self.next_u64() & !0xc0) | 0x80;
        (u128::from(first) | (u128::from(second) << 64)).to_le_bytes()
    }

    /// A new random trace id.
    #[inline]
    pub fn trace_id(&mut self) -> TraceId {
        TraceId(self.uuid_bytes())
    }

    /// A new random span id.
    #[inline]
    pub fn span_id(&mut self) -> SpanId {
        SpanId(self.uuid_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuid_v4_in_lowercase_hex() {
        let mut ids = IdGenerator::from_seed(7);
        let id = ids.trace_id();
        let mut buf = [0; 32];
        let hex = id.to_hex(&mut buf);
        assert_eq!(hex.len(), 32);
        assert!(hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_eq!(&hex[12..13], "4", "version nibble");
        assert!(
            matches!(&hex[16..17], "8" | "9" | "a" | "b"),
            "variant bits"
        );
        assert_eq!(TraceId::parse_hex(hex), Some(id));
        assert_eq!(TraceId::parse_hex("not-an-id"), None);
    }

    #[test]
    fn ids_set_the_same_bits_as_the_uuid_crate() {
        for seed in 0..1_000 {
            let (mut ids, mut words) = (IdGenerator::from_seed(seed), IdGenerator::from_seed(seed));
            let mut random = [0; 16];
            random[..8].copy_from_slice(&words.next_u64().to_le_bytes());
            random[8..].copy_from_slice(&words.next_u64().to_le_bytes());
            let expected = uuid::Builder::from_random_bytes(random).into_uuid();
            assert_eq!(ids.span_id().to_bytes(), expected.into_bytes());
            assert_eq!(expected.get_version_num(), 4);
        }
    }

    #[test]
    fn a_million_ids_do_not_collide() {
        let mut ids = IdGenerator::from_seed(1);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1_000_000 {
            assert!(seen.insert(ids.span_id()));
        }
    }
}
