//! The text of a stored document, by format: plain text and Markdown as they are (UTF-8),
//! HTML as a reader sees it (`html2text`: no markup, scripts or styles), PDF through its text
//! layer (`pdf-extract`). The result is normalised (line ends, control characters, runs of blank
//! lines) so that chunks and hits read cleanly.

use super::{DocumentError, MAX_TEXT_CHARS};

/// The columns HTML is laid out in: wide enough that paragraphs stay one line each (chunking
/// cuts by tokens, not by the layout's lines).
const HTML_WIDTH: usize = 10_000;

/// The text of `bytes` in `format` (`txt`, `md`, `markdown`, `html`, `htm`, `pdf`).
///
/// CPU-bound (a large PDF takes a while): call it off the async runtime.
pub fn text(format: &str, bytes: &[u8]) -> Result<String, DocumentError> {
    if bytes.is_empty() {
        return Err(DocumentError("the file is empty".into()));
    }
    let raw = match format {
        "txt" | "md" | "markdown" => utf8(bytes)?.to_owned(),
        "html" | "htm" => html(bytes)?,
        "pdf" => pdf(bytes)?,
        other => {
            return Err(DocumentError(format!(
                "{other} files cannot be ingested: text, Markdown, HTML or PDF"
            )));
        }
    };
    let text = normalize(&raw);
    if text.trim().is_empty() {
        return Err(DocumentError(if format == "pdf" {
            "the PDF has no text layer (scanned pages would need OCR, which is not done here)"
                .into()
        } else {
            "the document has no text".into()
        }));
    }
    if text.len() > MAX_TEXT_CHARS && text.chars().count() > MAX_TEXT_CHARS {
        return Err(DocumentError(format!(
            "the document's text is longer than {MAX_TEXT_CHARS} characters"
        )));
    }
    Ok(text)
}

fn utf8(bytes: &[u8]) -> Result<&str, DocumentError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| {
        DocumentError(format!(
            "the file is not UTF-8 text (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })
}

fn html(bytes: &[u8]) -> Result<String, DocumentError> {
    // html5ever reads bytes as UTF-8, replacing what is not; a page in another encoding still
    // gives its ASCII text.
    html2text::config::plain_no_decorate()
        .string_from_read(bytes, HTML_WIDTH)
        .map_err(|e| DocumentError(format!("the HTML could not be read: {e}")))
}

fn pdf(bytes: &[u8]) -> Result<String, DocumentError> {
    if !bytes.starts_with(b"%PDF-") {
        return Err(DocumentError(
            "the file is not a PDF (no %PDF- header)".into(),
        ));
    }
    // A malformed PDF can make the parser panic rather than fail; that is a corrupt file too,
    // never a crashed worker.
    let extracted = std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem(bytes));
    match extracted {
        Ok(Ok(text)) => Ok(text),
        Ok(Err(e)) => Err(DocumentError(format!("the PDF could not be read: {e}"))),
        Err(_) => Err(DocumentError(
            "the PDF could not be read: its structure is corrupt".into(),
        )),
    }
}

/// `\n` line ends, no control characters but tab and newline, no trailing spaces, at most one
/// blank line in a row.
fn normalize(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut blank_run = 0;
    for line in raw.replace("\r\n", "\n").replace('\r', "\n").split('\n') {
        let line: String = line
            .chars()
            .map(|c| if c == '\u{a0}' { ' ' } else { c })
            .filter(|c| *c == '\t' || !c.is_control())
            .collect();
        let line = line.trim_end();
        if line.trim().is_empty() {
            blank_run += 1;
            if blank_run > 1 || out.is_empty() {
                continue;
            }
            out.push('\n');
            continue;
        }
        blank_run = 0;
        out.push_str(line);
        out.push('\n');
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_and_markdown_are_read_as_utf8() {
        let t = text(
            "txt",
            "\u{feff}Zürich\r\nline two\n\n\n\nlast\u{7}".as_bytes(),
        )
        .unwrap();
        assert_eq!(t, "Zürich\nline two\n\nlast");
        let e = text("md", b"caf\xe9").unwrap_err();
        assert!(e.0.contains("not UTF-8"), "{e}");
        assert_eq!(text("txt", b"").unwrap_err().0, "the file is empty");
        assert_eq!(
            text("txt", b" \n\t\n").unwrap_err().0,
            "the document has no text"
        );
    }

    #[test]
    fn html_keeps_what_a_reader_sees() {
        let page = br#"<html><head><title>T</title><style>p{color:red}</style>
            <script>var secret = 1;</script></head>
            <body><h1>Otters</h1><p>Sea otters hold <b>hands</b> while sleeping.</p></body></html>"#;
        let t = text("html", page).unwrap();
        assert!(t.contains("Otters"), "{t}");
        assert!(t.contains("Sea otters hold hands while sleeping."), "{t}");
        assert!(!t.contains("secret"), "{t}");
        assert!(!t.contains("color:red"), "{t}");
        assert!(!t.contains('<'), "{t}");
    }

    #[test]
    fn a_file_that_is_not_a_pdf_or_a_broken_one_is_refused() {
        let e = text("pdf", b"hello").unwrap_err();
        assert!(e.0.contains("not a PDF"), "{e}");
        let e = text("pdf", b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog").unwrap_err();
        assert!(e.0.starts_with("the PDF could not be read"), "{e}");
        let e = text("docx", b"PK..").unwrap_err();
        assert!(e.0.contains("cannot be ingested"), "{e}");
    }
}
