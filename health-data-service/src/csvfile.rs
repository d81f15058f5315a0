//! CSV files of the importers: a header row naming the columns (any order, case-insensitive,
//! unknown columns ignored), then one record per line. Every problem is reported with its line
//! number, so a whole file can be rejected with a complete list of what to fix.

use std::collections::HashMap;
use std::str::FromStr;

use chrono::NaiveDate;
use csv::StringRecord;

use crate::error::RowError;

/// A parsed CSV file.
#[derive(Debug)]
pub struct Table {
    columns: HashMap<String, usize>,
    rows: Vec<(u64, StringRecord)>,
}

/// Reads a CSV file whose header must name every column of `required`. Lines that are entirely
/// empty are ignored.
pub fn read(bytes: &[u8], required: &[&str]) -> Result<Table, Vec<RowError>> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let header = reader
        .headers()
        .map_err(|e| vec![RowError::new(1, None, format!("unreadable header: {e}"))])?
        .clone();
    let columns: HashMap<String, usize> = header
        .iter()
        .enumerate()
        .map(|(i, name)| (name.to_lowercase(), i))
        .collect();
    let missing: Vec<RowError> = required
        .iter()
        .filter(|c| !columns.contains_key(**c))
        .map(|c| RowError::new(1, Some(c), format!("the header has no {c} column")))
        .collect();
    if !missing.is_empty() {
        return Err(missing);
    }
    // Line numbers come from byte offsets (the reader's own count skips blank lines, and a
    // record's offset is where the blank lines before it start).
    let line_at = |byte: u64| -> u64 {
        let start = usize::try_from(byte).unwrap_or(usize::MAX).min(bytes.len());
        let first = bytes[start..]
            .iter()
            .position(|b| !matches!(b, b'\n' | b'\r'))
            .map_or(bytes.len(), |i| start + i);
        1 + bytes[..first].iter().filter(|b| **b == b'\n').count() as u64
    };
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for record in reader.records() {
        match record {
            Ok(r) if r.iter().all(str::is_empty) => {}
            Ok(r) => rows.push((r.position().map_or(0, |p| line_at(p.byte())), r)),
            Err(e) => {
                let line = e.position().map_or(0, |p| line_at(p.byte()));
                errors.push(RowError::new(line, None, format!("unreadable line: {e}")));
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if rows.is_empty() {
        return Err(vec![RowError::new(1, None, "the file has no data rows")]);
    }
    Ok(Table { columns, rows })
}

impl Table {
    /// The data rows with their line numbers.
    pub fn rows(&self) -> impl Iterator<Item = Row<'_>> {
        self.rows.iter().map(|(line, record)| Row {
            table: self,
            line: *line,
            record,
        })
    }
}

/// One data row.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    table: &'a Table,
    /// Its line in the file.
    pub line: u64,
    record: &'a StringRecord,
}

impl<'a> Row<'a> {
    /// A column's text; `None` when the column is absent or the cell empty.
    pub fn text(&self, column: &str) -> Option<&'a str> {
        let i = *self.table.columns.get(column)?;
        self.record.get(i).filter(|v| !v.is_empty())
    }

    /// A bad cell of this row.
    pub fn error(&self, column: &str, message: impl Into<String>) -> RowError {
        RowError::new(self.line, Some(column), message)
    }

    /// A column that must have a value.
    pub fn required(&self, column: &str, errors: &mut Vec<RowError>) -> Option<&'a str> {
        let v = self.text(column);
        if v.is_none() {
            errors.push(self.error(column, format!("{column} is empty")));
        }
        v
    }

    /// An optional number (`.` as decimal point).
    pub fn number<T: FromStr>(&self, column: &str, errors: &mut Vec<RowError>) -> Option<T> {
        let v = self.text(column)?;
        v.parse()
            .map_err(|_| errors.push(self.error(column, format!("{v:?} is not a number"))))
            .ok()
    }

    /// An optional date, `YYYY-MM-DD`.
    pub fn date(&self, column: &str, errors: &mut Vec<RowError>) -> Option<NaiveDate> {
        let v = self.text(column)?;
        NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map_err(|_| {
                errors.push(self.error(column, format!("{v:?} is not a date (YYYY-MM-DD)")))
            })
            .ok()
    }

    /// An optional yes/no: `true`/`false`, `yes`/`no`, `1`/`0`.
    pub fn flag(&self, column: &str, errors: &mut Vec<RowError>) -> Option<bool> {
        let v = self.text(column)?;
        match v.to_lowercase().as_str() {
            "true" | "yes" | "y" | "1" => Some(true),
            "false" | "no" | "n" | "0" => Some(false),
            _ => {
                errors.push(self.error(column, format!("{v:?} is not true or false")));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn header_rows_and_line_numbers() {
        let t = read(
            b"\xEF\xBB\xBFDate, Value ,x\n2024-01-02,1.5,\n\n2024-01-03,abc,y\n",
            &["date"],
        )
        .unwrap();
        let rows: Vec<Row<'_>> = t.rows().collect();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].line, rows[1].line), (2, 4));
        let mut errors = Vec::new();
        assert_eq!(rows[0].number::<f64>("value", &mut errors), Some(1.5));
        assert_eq!(rows[0].text("x"), None);
        assert_eq!(rows[1].number::<f64>("value", &mut errors), None);
        assert_eq!(
            errors,
            vec![RowError::new(4, Some("value"), "\"abc\" is not a number")]
        );
        let missing = read(b"a,b\n1,2\n", &["date", "a"]).unwrap_err();
        assert_eq!(
            missing,
            vec![RowError::new(
                1,
                Some("date"),
                "the header has no date column"
            )]
        );
        assert!(read(b"date\n", &["date"]).is_err());
    }
}
