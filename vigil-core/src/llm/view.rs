//! Reading a response's output straight from its JSON text: views that
//! borrow the pieces the output keeps and skip the rest unparsed.

use alloc::borrow::{Cow, ToOwned};

use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::ser::Error as _;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;

/// Deserializes a view from a JSON object only (a derived impl would take
/// an array too, where [`output`] sees no fields), the last of a repeated
/// key winning, as in a parsed value; other keys are skipped unparsed.
macro_rules! object_view {
    ($view:ident { $($field:ident),* }) => {
        impl<'de: 'a, 'a> serde::Deserialize<'de> for $view<'a> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Fields<'a>(core::marker::PhantomData<&'a ()>);
                impl<'de: 'a, 'a> serde::de::Visitor<'de> for Fields<'a> {
                    type Value = $view<'a>;
                    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                        f.write_str("an object")
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<$view<'a>, A::Error> {
                        let mut view = $view::default();
                        while let Some(key) = map.next_key::<$crate::llm::view::Key<'de>>()? {
                            match key.0.as_ref() {
                                $(stringify!($field) => view.$field = map.next_value()?,)*
                                _ => {
                                    map.next_value::<serde::de::IgnoredAny>()?;
                                }
                            }
                        }
                        Ok(view)
                    }
                }
                d.deserialize_map(Fields(core::marker::PhantomData))
            }
        }
    };
}

pub(super) use object_view;

/// An object's key, borrowed from the text unless it had escapes.
pub(super) struct Key<'de>(pub(super) Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> Visitor<'de> for Text {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(Text)
    }
}

/// A piece of the response's text, serialized as the value it holds
/// (`null` when absent).
pub(super) struct Piece<'a>(pub(super) Option<&'a RawValue>);

impl Serialize for Piece<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            None => serializer.serialize_unit(),
            Some(raw) => serde_json::from_str::<Value>(raw.get())
                .map_err(S::Error::custom)?
                .serialize(serializer),
        }
    }
}

/// How many elements an array has, each skipped unparsed; `None` for any
/// other value.
#[derive(Debug)]
pub(super) struct Length(pub(super) Option<usize>);

impl<'de> Deserialize<'de> for Length {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Count)
    }
}

struct Count;

impl<'de> Visitor<'de> for Count {
    type Value = Length;
    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("any value")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Length, A::Error> {
        let mut n = 0;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            n += 1;
        }
        Ok(Length(Some(n)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Length, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Length(None))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Length, E> {
        Ok(Length(None))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Length, E> {
        Ok(Length(None))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Length, E> {
        Ok(Length(None))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Length, E> {
        Ok(Length(None))
    }
    fn visit_str<E>(self, _: &str) -> Result<Length, E> {
        Ok(Length(None))
    }
    fn visit_unit<E>(self) -> Result<Length, E> {
        Ok(Length(None))
    }
}
