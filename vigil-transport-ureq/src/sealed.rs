//! The API key kept out of every log line.
//!
//! ureq logs each request head at `TRACE`, 16 bytes a line in hex and text,
//! as it formats it into the connection's output buffer. So the head is
//! formatted with a placeholder of the key's length, and the last connector
//! of the chain, which sees the bytes after they are logged and before they
//! reach the socket (or TLS, which encrypts them), puts the key in its place.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, NextTimeout, Transport};
use ureq::Error;

/// Secret header values (`Authorization`, an OTLP backend's key header) and
/// their placeholders, of the same lengths.
#[derive(Clone, Default)]
pub(crate) struct SealedKey(Option<Arc<[Pair]>>);

struct Pair {
    placeholder: String,
    value: String,
}

impl SealedKey {
    /// Seals `value` (`Bearer <key>`) behind a random placeholder.
    #[cfg(test)]
    pub(crate) fn new(value: String) -> SealedKey {
        SealedKey::many(vec![value])
    }

    /// Seals each of `values` behind a placeholder of its own.
    pub(crate) fn many(values: Vec<String>) -> SealedKey {
        let state = RandomState::new();
        let pairs: Vec<Pair> = values
            .into_iter()
            .enumerate()
            .map(|(n, value)| Pair::new(value, &state, n))
            .collect();
        SealedKey((!pairs.is_empty()).then(|| pairs.into()))
    }

    /// What ureq is given as the header value of the first secret.
    #[cfg(test)]
    pub(crate) fn placeholder(&self) -> String {
        self.placeholders().next().unwrap_or_default().to_owned()
    }

    /// What ureq is given as the header values, in the order of the secrets.
    pub(crate) fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .flat_map(|pairs| pairs.iter().map(|p| p.placeholder.as_str()))
    }
}

impl Pair {
    fn new(value: String, state: &RandomState, n: usize) -> Pair {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let secret = value.strip_prefix("Bearer ").unwrap_or(&value);
        let mut placeholder = String::with_capacity(value.len());
        placeholder.push_str(&value[..value.len() - secret.len()]);
        let mut word = 0u64;
        // One character per byte of the secret, so the lengths match.
        for i in 0..secret.len() {
            if i % 8 == 0 {
                let mut h = state.build_hasher();
                h.write_usize(n);
                h.write_usize(i);
                word = h.finish();
            }
            placeholder.push(char::from(ALPHABET[(word % 62) as usize]));
            word /= 62;
        }
        Pair { placeholder, value }
    }
}

impl fmt::Debug for SealedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealedKey(<redacted>)")
    }
}

impl<In: Transport> Connector<In> for SealedKey {
    type Out = Unsealing<In>;

    fn connect(
        &self,
        _details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, Error> {
        Ok(chained.map(|inner| Unsealing {
            inner,
            key: self.clone(),
        }))
    }
}

/// A connection whose outgoing bytes get the key in place of its placeholder.
pub(crate) struct Unsealing<T> {
    inner: T,
    key: SealedKey,
}

impl<T> fmt::Debug for Unsealing<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unsealing").finish_non_exhaustive()
    }
}

impl<T: Transport> Transport for Unsealing<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        if let Some(pairs) = &self.key.0 {
            let out = &mut self.inner.buffers().output()[..amount];
            for pair in pairs.iter() {
                unseal(out, pair.placeholder.as_bytes(), pair.value.as_bytes());
            }
        }
        self.inner.transmit_output(amount, timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

/// Replaces the first header value equal to `placeholder` (after `: `,
/// before `\r\n`) with `value`, of the same length.
fn unseal(out: &mut [u8], placeholder: &[u8], value: &[u8]) {
    let n = placeholder.len();
    if n == 0 || n != value.len() || out.len() < n + 4 {
        return;
    }
    let at = (2..=out.len() - n - 2).find(|&i| {
        &out[i - 2..i] == b": "
            && &out[i..i + n] == placeholder
            && &out[i + n..i + n + 2] == b"\r\n"
    });
    if let Some(i) = at {
        out[i..i + n].copy_from_slice(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_placeholder_is_as_long_as_the_key_and_is_replaced_in_the_head_only() {
        let key = SealedKey::new("Bearer sk-secret-123".into());
        let placeholder = key.placeholder();
        assert_eq!(placeholder.len(), "Bearer sk-secret-123".len());
        assert!(placeholder.starts_with("Bearer ") && !placeholder.contains("sk-secret"));
        let head = format!(
            "POST /v1/traces HTTP/1.1\r\nauthorization: {placeholder}\r\n\r\n{placeholder}"
        );
        let mut bytes = head.into_bytes();
        unseal(&mut bytes, placeholder.as_bytes(), b"Bearer sk-secret-123");
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("authorization: Bearer sk-secret-123\r\n"));
        // A body that happens to hold the placeholder is left alone.
        assert!(text.ends_with(&placeholder));
        assert!(!format!("{key:?}").contains("secret"));
    }

    #[test]
    fn several_secrets_get_placeholders_of_their_own() {
        let keys = SealedKey::many(vec!["Bearer a-b-c".into(), "team-key-42".into()]);
        let p: Vec<String> = keys.placeholders().map(str::to_owned).collect();
        assert_eq!((p[0].len(), p[1].len()), (12, 11));
        assert_ne!(p[0][7..], p[1][..5]);
        let mut head = format!(
            "POST / HTTP/1.1\r\nauthorization: {}\r\nx-team: {}\r\n\r\n",
            p[0], p[1]
        )
        .into_bytes();
        for (pair, value) in keys
            .0
            .as_ref()
            .unwrap()
            .iter()
            .zip(["Bearer a-b-c", "team-key-42"])
        {
            unseal(&mut head, pair.placeholder.as_bytes(), value.as_bytes());
        }
        let text = String::from_utf8(head).unwrap();
        assert!(text.contains("authorization: Bearer a-b-c\r\nx-team: team-key-42\r\n"));
    }
}
