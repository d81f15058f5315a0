//! `STORAGE__…`: which backend, its credentials, the URLs it hands out and the upload limits.

use serde::{Deserialize, Deserializer};

use crate::settings::{Secret, optional_secret, optional_string};

/// The extensions `POST /api/v1/storage/upload` accepts unless `STORAGE__ALLOWED_EXTENSIONS`
/// says otherwise: audio, images, documents, video. No HTML, SVG or scripts: a stored file must
/// never run as a page. Only that route checks the list: `Storage::put` and its siblings take
/// any extension [`super::key::extension`] allows (`jsonl` for batch files, say).
#[rustfmt::skip]
pub const DEFAULT_ALLOWED_EXTENSIONS: &[&str] = &[
    // audio
    "mp3", "wav", "ogg", "oga", "opus", "m4a", "aac", "flac", "weba",
    // images
    "png", "jpg", "jpeg", "gif", "webp", "heic", "heif", "avif", "bmp",
    // documents
    "pdf", "txt", "md", "csv", "json", "rtf", "doc", "docx", "xls", "xlsx", "ppt", "pptx",
    "odt", "ods", "odp",
    // video
    "mp4", "m4v", "mov", "webm", "mkv",
];

/// `STORAGE__…`: the backend, its URLs and the upload limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct StorageSettings {
    /// The local backend's directory, used when no bucket is set.
    pub dir: String,
    /// The S3 bucket; set, it selects the S3 backend.
    #[serde(deserialize_with = "optional_string")]
    pub bucket: Option<String>,
    /// An S3-compatible endpoint (`http://127.0.0.1:9000` for MinIO); AWS's own when unset.
    #[serde(deserialize_with = "optional_string")]
    pub endpoint: Option<String>,
    /// The region requests are signed for.
    pub region: String,
    /// Path-style URLs (`{endpoint}/{bucket}/{key}`), as MinIO and most S3-compatible services
    /// need; virtual-hosted style (`{bucket}.{endpoint}`) otherwise.
    pub force_path_style: bool,
    /// The access key id (required with a bucket).
    #[serde(deserialize_with = "optional_secret")]
    pub access_key_id: Option<Secret>,
    /// The secret access key (required with a bucket).
    #[serde(deserialize_with = "optional_secret")]
    pub secret_access_key: Option<Secret>,
    /// Create the bucket at start-up when it does not exist (MinIO, development).
    pub create_bucket: bool,
    /// Lifetime of the URLs handed out (presigned or signed), seconds.
    pub url_expiry_secs: u64,
    /// Key of the local backend's signed URLs; derived from `JWT_SECRET` when unset.
    #[serde(deserialize_with = "optional_secret")]
    pub url_secret: Option<Secret>,
    /// Scheme and host the local backend's URLs start with (`https://api.example.com`); unset,
    /// they are paths relative to the gateway (`/api/v1/storage/files/…`).
    #[serde(deserialize_with = "optional_string")]
    pub public_base_url: Option<String>,
    /// The extensions the upload route accepts (a list, or one string `"mp3,wav,png"`); what
    /// services store through `Storage` is not checked against it.
    #[serde(deserialize_with = "extension_list")]
    pub allowed_extensions: Vec<String>,
    /// Largest uploaded file, bytes; larger ones get 413.
    pub max_upload_bytes: usize,
    /// Longest wait for a connection to S3, seconds.
    pub connect_timeout_secs: u64,
    /// Longest S3 operation, retries included, seconds.
    pub operation_timeout_secs: u64,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            dir: "./data/storage".into(),
            bucket: None,
            endpoint: None,
            region: "us-east-1".into(),
            force_path_style: false,
            access_key_id: None,
            secret_access_key: None,
            create_bucket: false,
            url_expiry_secs: 3600,
            url_secret: None,
            public_base_url: None,
            allowed_extensions: default_extensions(),
            max_upload_bytes: 25 << 20,
            connect_timeout_secs: 5,
            operation_timeout_secs: 60,
        }
    }
}

fn default_extensions() -> Vec<String> {
    DEFAULT_ALLOWED_EXTENSIONS
        .iter()
        .map(|e| (*e).to_owned())
        .collect()
}

/// A list of extensions from a TOML list or one comma- or space-separated string; leading dots
/// are dropped and case is folded. Empty means the default list, like other empty settings.
fn extension_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let items: Vec<String> = match serde_json::Value::deserialize(d)? {
        serde_json::Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            })
            .collect(),
        serde_json::Value::Null => Vec::new(),
        serde_json::Value::String(s) => vec![s],
        other => vec![other.to_string()],
    };
    let list: Vec<String> = items
        .iter()
        .flat_map(|s| s.split(|c: char| c == ',' || c.is_whitespace()))
        .map(|e| e.trim().trim_start_matches('.').to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .collect();
    Ok(if list.is_empty() {
        default_extensions()
    } else {
        list
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::settings::load_from;
    use uuid::Uuid;

    #[test]
    fn extension_lists_from_a_string_or_a_list() {
        let dir = std::env::temp_dir().join(format!("storage-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("svc.toml");
        #[derive(Deserialize)]
        struct S {
            storage: StorageSettings,
        }
        for (toml, want) in [
            (
                "allowed_extensions = \"MP3, .wav png\"",
                vec!["mp3", "wav", "png"],
            ),
            (
                "allowed_extensions = [\"Mp3\", \".ogg\"]",
                vec!["mp3", "ogg"],
            ),
        ] {
            std::fs::write(&file, format!("[storage]\n{toml}\n")).unwrap();
            let s: S = load_from(Some(&file), false).unwrap();
            assert_eq!(s.storage.allowed_extensions, want);
        }
        std::fs::write(&file, "[storage]\nallowed_extensions = \"\"\n").unwrap();
        let s: S = load_from(Some(&file), false).unwrap();
        assert_eq!(s.storage.allowed_extensions, default_extensions());
    }
}
