//! Container ids: 64 hex digits from the kernel's random source, shown by their first 12 as
//! docker shows them.

use std::io::Read as _;

use crate::{Error, Result};

/// A new id: 32 random bytes as 64 lowercase hex digits.
pub fn new_id() -> Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::File {
            path: "/dev/urandom".into(),
            source: e,
        })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The first 12 characters of `id` (all of it when shorter), as docker shows an id.
pub fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_hex_digits_and_differ() {
        let (a, b) = (new_id().unwrap(), new_id().unwrap());
        assert_eq!(a.len(), 64);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
        assert_eq!(short_id(&a), &a[..12]);
        assert_eq!(short_id("abc"), "abc");
    }
}
