//! Ids that content gives: SHA-256 in hex, and a UUID derived from a list of parts, so that the
//! same parts always name the same thing (a message indexed twice, a file uploaded twice).

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A UUID that the same parts always give: the first 16 bytes of the SHA-256 of the parts
/// (NUL-separated), as a version-8 (custom) UUID.
pub fn derived_uuid(parts: &[&str]) -> Uuid {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_parts_give_the_same_id() {
        let a = derived_uuid(&["t", "u", "message", &sha256_hex(b"hello")]);
        assert_eq!(
            a,
            derived_uuid(&["t", "u", "message", &sha256_hex(b"hello")])
        );
        assert_ne!(
            a,
            derived_uuid(&["t", "v", "message", &sha256_hex(b"hello")])
        );
        assert_ne!(
            a,
            derived_uuid(&["t", "u", "message", &sha256_hex(b"hello!")])
        );
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(derived_uuid(&["ab", "c"]), derived_uuid(&["a", "bc"]));
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
