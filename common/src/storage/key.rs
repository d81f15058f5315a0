//! Object keys: `{tenant}/{folder}/{timestamp}_{uuid}.{ext}`, or `{tenant}/{folder}/{filename}`
//! with a sanitized original filename, and the checks that keep every key inside its tenant.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StorageError;

/// Longest folder name, characters.
pub const MAX_FOLDER_CHARS: usize = 64;
/// Longest extension, characters.
pub const MAX_EXT_CHARS: usize = 16;
/// Longest file name (a key's last segment), bytes.
pub const MAX_NAME_BYTES: usize = 200;

/// A key split into its three segments; only built by [`parse`], so every part passed its check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyParts {
    /// The owner: the first segment.
    pub tenant: Uuid,
    /// The folder (`tts`, `uploads`, `images`).
    pub folder: String,
    /// The file name.
    pub name: String,
}

impl KeyParts {
    /// The key as stored: `{tenant}/{folder}/{name}`.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.tenant, self.folder, self.name)
    }

    /// The file name's extension, lowercase, if it has one.
    pub fn extension(&self) -> Option<String> {
        self.name
            .rsplit_once('.')
            .map(|(_, ext)| ext.to_ascii_lowercase())
    }
}

/// A folder: 1 to [`MAX_FOLDER_CHARS`] ASCII letters, digits, `-` or `_` (so no `/`, `.`, `..`).
pub fn folder(folder: &str) -> Result<&str, StorageError> {
    let ok = !folder.is_empty()
        && folder.len() <= MAX_FOLDER_CHARS
        && folder
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(folder)
    } else {
        Err(StorageError::Invalid(format!(
            "folder must be 1 to {MAX_FOLDER_CHARS} letters, digits, '-' or '_'"
        )))
    }
}

/// An extension (without the dot), lowercased: 1 to [`MAX_EXT_CHARS`] ASCII letters or digits.
pub fn extension(ext: &str) -> Result<String, StorageError> {
    let ok = !ext.is_empty()
        && ext.len() <= MAX_EXT_CHARS
        && ext.bytes().all(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(ext.to_ascii_lowercase())
    } else {
        Err(StorageError::Invalid(format!(
            "extension must be 1 to {MAX_EXT_CHARS} letters or digits"
        )))
    }
}

/// The generated file name `{timestamp}_{uuid}.{ext}`: UTC `YYYYMMDDTHHMMSSZ`, so names sort by
/// time, and a random UUID, so two objects never share a name.
pub fn generated_name(ext: &str, now: DateTime<Utc>) -> Result<String, StorageError> {
    let ext = extension(ext)?;
    Ok(format!(
        "{}_{}.{ext}",
        now.format("%Y%m%dT%H%M%SZ"),
        Uuid::new_v4().simple()
    ))
}

/// A client's file name made safe as a key's last segment: only its last path component, every
/// character other than a letter, a digit, `.`, `-` or `_` replaced by `_`, no leading dots (no
/// hidden or temporary names, no `..`), at most [`MAX_NAME_BYTES`] bytes with the extension kept.
pub fn sanitize_filename(original: &str) -> Result<String, StorageError> {
    let base = original.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let cleaned = cleaned.trim_start_matches('.');
    let (stem, ext) = match cleaned.rsplit_once('.') {
        Some((stem, ext)) if !ext.is_empty() && ext.len() <= MAX_EXT_CHARS => (stem, Some(ext)),
        _ => (cleaned, None),
    };
    let room = MAX_NAME_BYTES - ext.map_or(0, |e| e.len() + 1);
    let mut end = stem.len().min(room);
    while !stem.is_char_boundary(end) {
        end -= 1;
    }
    let stem = &stem[..end];
    if stem.is_empty() || stem.chars().all(|c| c == '_' || c == '.') {
        return Err(StorageError::Invalid(
            "the file name has no usable characters".into(),
        ));
    }
    Ok(match ext {
        Some(ext) => format!("{stem}.{ext}"),
        None => stem.to_owned(),
    })
}

/// A key's last segment as read back: 1 to [`MAX_NAME_BYTES`] bytes, no separator, no control
/// character, no leading dot.
fn name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && !name.starts_with('.')
        && !name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
}

/// Splits and checks a key; anything that is not `{uuid}/{folder}/{name}` is `Invalid`.
pub fn parse(key: &str) -> Result<KeyParts, StorageError> {
    let invalid = || StorageError::Invalid("not a storage key".into());
    let mut segments = key.split('/');
    let (Some(tenant), Some(folder_name), Some(file), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(invalid());
    };
    // Only the canonical spelling, so one object has one key.
    let tenant = Uuid::parse_str(tenant)
        .ok()
        .filter(|t| t.hyphenated().to_string() == tenant)
        .ok_or_else(invalid)?;
    folder(folder_name).map_err(|_| invalid())?;
    if !name(file) {
        return Err(invalid());
    }
    Ok(KeyParts {
        tenant,
        folder: folder_name.to_owned(),
        name: file.to_owned(),
    })
}

/// The key's parts when it belongs to `tenant`; a key of another tenant, or no key at all, is
/// `NotFound`: a caller learns nothing about keys that are not its own.
pub fn owned_by(tenant: Uuid, key: &str) -> Result<KeyParts, StorageError> {
    match parse(key) {
        Ok(parts) if parts.tenant == tenant => Ok(parts),
        _ => Err(StorageError::NotFound),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn generated_keys_follow_the_scheme() {
        let now = DateTime::parse_from_rfc3339("2026-01-15T09:30:12Z")
            .unwrap()
            .with_timezone(&Utc);
        let name = generated_name("MP3", now).unwrap();
        assert!(name.starts_with("20260115T093012Z_"), "{name}");
        assert!(name.ends_with(".mp3"), "{name}");
        assert_eq!(name.len(), "20260115T093012Z_".len() + 32 + 4);
        let tenant = Uuid::new_v4();
        let parts = parse(&format!("{tenant}/tts/{name}")).unwrap();
        assert_eq!(parts.tenant, tenant);
        assert_eq!(parts.extension().as_deref(), Some("mp3"));
    }

    #[test]
    fn folders_and_extensions_refuse_separators_and_controls() {
        for bad in ["", "a/b", "..", ".", "a\0", "a\n", "tts ", &"x".repeat(65)] {
            assert!(folder(bad).is_err(), "{bad:?}");
        }
        for bad in ["", "m/p3", "..", "mp\r3", "tar.gz", &"x".repeat(17)] {
            assert!(extension(bad).is_err(), "{bad:?}");
        }
        assert_eq!(folder("tts-v2_x").unwrap(), "tts-v2_x");
    }

    #[test]
    fn filenames_are_sanitized() {
        assert_eq!(
            sanitize_filename("voice note.mp3").unwrap(),
            "voice_note.mp3"
        );
        assert_eq!(sanitize_filename("../../etc/passwd").unwrap(), "passwd");
        assert_eq!(sanitize_filename("C:\\x\\..\\évé.WAV").unwrap(), "évé.WAV");
        assert_eq!(sanitize_filename("..hidden.txt").unwrap(), "hidden.txt");
        assert_eq!(sanitize_filename("a\u{0}b\nc.pdf").unwrap(), "a_b_c.pdf");
        assert!(sanitize_filename("..").is_err());
        assert!(sanitize_filename("/").is_err());
        assert!(sanitize_filename("???.mp3").is_err());
        let long = format!("{}.mp3", "é".repeat(300));
        let name = sanitize_filename(&long).unwrap();
        assert!(
            name.len() <= MAX_NAME_BYTES && name.ends_with(".mp3"),
            "{name}"
        );
    }

    #[test]
    fn keys_of_other_tenants_and_odd_keys_are_not_found() {
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        let key = format!("{a}/uploads/x.mp3");
        assert!(owned_by(a, &key).is_ok());
        assert!(matches!(owned_by(b, &key), Err(StorageError::NotFound)));
        for bad in [
            format!("{a}/uploads/../x.mp3"),
            format!("{a}/../{b}/x.mp3"),
            format!("{a}/uploads/.x.mp3"),
            format!("{a}/uploads/x\n.mp3"),
            format!("{a}/uploads"),
            format!("{a}/up/loads/x.mp3"),
            format!("{}/uploads/x.mp3", a.simple()),
            format!(
                "{}/uploads/x.mp3",
                a.hyphenated().to_string().to_uppercase()
            ),
            format!("/{a}/uploads/x.mp3"),
        ] {
            assert!(parse(&bad).is_err(), "{bad}");
            assert!(matches!(owned_by(a, &bad), Err(StorageError::NotFound)));
        }
    }
}
