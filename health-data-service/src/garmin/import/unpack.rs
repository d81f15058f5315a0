//! Unpacking an upload into the files the Garmin importer reads: zips are opened (the export,
//! and the `UploadedFiles_*.zip` of FIT files inside it), files of other datasets are counted as
//! skipped, and the unpacked size is bounded.

use std::borrow::Cow;
use std::io::{Cursor, Read};

use crate::garmin::parse::{self, FileKind, ParseError, Parsed};
use crate::garmin::{Records, fit};
use crate::text;

/// How deep zips inside zips are opened (the export, then its `UploadedFiles_*.zip`).
const MAX_ZIP_DEPTH: usize = 2;

/// One file the importer reads.
#[derive(Debug, Clone)]
pub struct ImportFile {
    /// Its path (inside the archive, when it came from one).
    pub name: String,
    /// What it holds.
    pub kind: FileKind,
    /// Its contents.
    pub bytes: Vec<u8>,
}

/// The files to import, and how many files of the upload were not ones the importer reads.
#[derive(Debug, Default)]
pub struct Unpacked {
    /// Files to import, in upload (and archive) order.
    pub files: Vec<ImportFile>,
    /// Files skipped (other datasets of the export, folders).
    pub skipped: usize,
}

/// Why an upload cannot be imported at all.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// A `.zip` that does not open.
    #[error("{name} is not a readable zip archive: {reason}")]
    BadZip {
        /// The archive.
        name: String,
        /// What failed.
        reason: String,
    },
    /// The archives unpack to more than the allowed size.
    #[error("the upload unpacks to more than {0} bytes")]
    TooLarge(usize),
}

/// Unpacks uploaded `(name, bytes)` files: zips are opened (and zips inside them), files the
/// importer does not read are counted as skipped. At most `max_bytes` are unpacked.
pub fn unpack(uploads: Vec<(String, Vec<u8>)>, max_bytes: usize) -> Result<Unpacked, UnpackError> {
    let mut out = Unpacked::default();
    let mut budget = max_bytes;
    for (name, bytes) in uploads {
        add(&mut out, name, bytes, 0, &mut budget, max_bytes)?;
    }
    Ok(out)
}

fn add(
    out: &mut Unpacked,
    name: String,
    bytes: Vec<u8>,
    depth: usize,
    budget: &mut usize,
    max_bytes: usize,
) -> Result<(), UnpackError> {
    // A name is shown in the job's errors (stored as JSON in PostgreSQL, which refuses NUL), and
    // a zip entry's name is whatever bytes its maker wrote: kept without control characters.
    let name = match text::strip_controls(&name) {
        Cow::Owned(clean) => clean,
        Cow::Borrowed(_) => name,
    };
    match parse::kind_of(&name) {
        None => out.skipped += 1,
        Some(FileKind::Zip) if depth < MAX_ZIP_DEPTH => {
            let bad = |e: &dyn std::fmt::Display| UnpackError::BadZip {
                name: name.clone(),
                reason: e.to_string(),
            };
            let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| bad(&e))?;
            for i in 0..archive.len() {
                let mut entry = archive.by_index(i).map_err(|e| bad(&e))?;
                if entry.is_dir() {
                    continue;
                }
                let inner = entry.name().map_err(|e| bad(&e))?.into_owned();
                if parse::kind_of(&inner).is_none() {
                    out.skipped += 1;
                    continue;
                }
                let mut data = Vec::new();
                let limit = u64::try_from(*budget).unwrap_or(u64::MAX).saturating_add(1);
                (&mut entry)
                    .take(limit)
                    .read_to_end(&mut data)
                    .map_err(|e| bad(&e))?;
                *budget = budget
                    .checked_sub(data.len())
                    .ok_or(UnpackError::TooLarge(max_bytes))?;
                add(out, inner, data, depth + 1, budget, max_bytes)?;
            }
        }
        Some(FileKind::Zip) => out.skipped += 1,
        Some(kind) => out.files.push(ImportFile { name, kind, bytes }),
    }
    Ok(())
}

/// Reads one file's records.
pub fn read(file: &ImportFile) -> Result<Parsed, ParseError> {
    match file.kind {
        FileKind::Fit => fit::parse(&file.bytes).map(|activities| Parsed {
            records: Records::Activities(activities),
            skipped: 0,
        }),
        kind => parse::parse_json(kind, &file.bytes),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::Write;

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default();
        for (name, data) in entries {
            w.start_file(*name, options).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn exports_are_unpacked_with_their_nested_zips() {
        let fits = zip_of(&[("a_1.fit", b"fit-1"), ("a_2.fit", b"fit-2")]);
        let export = zip_of(&[
            (
                "DI_CONNECT/DI-Connect-Aggregator/UDSFile_2024-03-07_2024-03-12.json",
                b"[]",
            ),
            (
                "DI_CONNECT/DI-Connect-Wellness/1_personalRecord.json",
                b"[]",
            ),
            (
                "DI_CONNECT/DI-Connect-Uploaded-Files/UploadedFiles_0-_Part1.zip",
                &fits,
            ),
        ]);
        let u = unpack(
            vec![("export.zip".into(), export), ("notes.txt".into(), vec![1])],
            1 << 20,
        )
        .unwrap();
        let names: Vec<&str> = u.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "DI_CONNECT/DI-Connect-Aggregator/UDSFile_2024-03-07_2024-03-12.json",
                "a_1.fit",
                "a_2.fit"
            ]
        );
        assert_eq!(u.skipped, 2);
        let big = zip_of(&[("UDSFile_x.json", &[b' '; 100])]);
        assert!(matches!(
            unpack(vec![("e.zip".into(), big)], 50),
            Err(UnpackError::TooLarge(50))
        ));
        assert!(matches!(
            unpack(vec![("e.zip".into(), b"nope".to_vec())], 50),
            Err(UnpackError::BadZip { .. })
        ));
    }
}
