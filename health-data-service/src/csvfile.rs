//! CSV files of the importers: a header row naming the columns (any order, case-insensitive,
//! unknown columns ignored), then one record per line. Every problem is reported with its line
//! number, so a whole file can be rejected with a complete list of what to fix.
//!
//! Every cell of every import meets the text rule (`crate::text`): no NUL or other control
//! character but tab, at most [`text::MAX_CELL_CHARS`] characters, or less where the layout says
//! so. A row with a bad cell is never handed to the layout; its errors come back through
//! [`Table::finish`]. Numbers are finite, and checked against a range where the layout gives one.

use std::collections::HashMap;
use std::fmt::Display;
use std::str::FromStr;

use chrono::NaiveDate;
use csv::StringRecord;

use crate::error::RowError;
use crate::text;

/// What a layout expects of a file.
#[derive(Debug, Clone, Copy)]
pub struct Layout<'a> {
    /// The columns the header must name.
    pub required: &'a [&'a str],
    /// Columns with a tighter length limit than [`text::MAX_CELL_CHARS`]: `(column, characters)`.
    pub max_chars: &'a [(&'a str, usize)],
}

/// A parsed CSV file.
#[derive(Debug)]
pub struct Table {
    columns: HashMap<String, usize>,
    /// Rows whose every cell passed the text rule.
    rows: Vec<(u64, StringRecord)>,
    /// The bad cells of the other rows.
    errors: Vec<RowError>,
}

/// Reads a CSV file whose header must name every column `layout` requires. Lines that are
/// entirely empty are ignored.
pub fn read(bytes: &[u8], layout: Layout<'_>) -> Result<Table, Vec<RowError>> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let header = reader
        .headers()
        .map_err(|e| vec![RowError::new(1, None, format!("unreadable header: {e}"))])?
        .clone();
    let names: Vec<String> = header.iter().map(str::to_lowercase).collect();
    let bad_names: Vec<RowError> = names
        .iter()
        .enumerate()
        .filter_map(|(i, name)| {
            text::check(
                &format!("header cell {}", i + 1),
                name,
                text::MAX_NAME_CHARS,
            )
            .err()
        })
        .map(|message| RowError::new(1, None, message))
        .collect();
    if !bad_names.is_empty() {
        return Err(bad_names);
    }
    let columns: HashMap<String, usize> = names
        .iter()
        .enumerate()
        .map(|(i, name)| (name.clone(), i))
        .collect();
    let missing: Vec<RowError> = layout
        .required
        .iter()
        .filter(|c| !columns.contains_key(**c))
        .map(|c| RowError::new(1, Some(c), format!("the header has no {c} column")))
        .collect();
    if !missing.is_empty() {
        return Err(missing);
    }
    let limit = |column: &str| {
        layout
            .max_chars
            .iter()
            .find(|(c, _)| *c == column)
            .map_or(text::MAX_CELL_CHARS, |(_, max)| *max)
    };
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
    let mut unreadable = Vec::new();
    for record in reader.records() {
        match record {
            Ok(r) if r.iter().all(str::is_empty) => {}
            Ok(r) => {
                let line = r.position().map_or(0, |p| line_at(p.byte()));
                let before = errors.len();
                for (i, cell) in r.iter().enumerate() {
                    let name = names.get(i).map(String::as_str);
                    let what = name.map_or_else(|| format!("cell {}", i + 1), str::to_owned);
                    let max = name.map_or(text::MAX_CELL_CHARS, limit);
                    if let Err(message) = text::check(&what, cell, max) {
                        errors.push(RowError::new(line, name, message));
                    }
                }
                if errors.len() == before {
                    rows.push((line, r));
                }
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| line_at(p.byte()));
                unreadable.push(RowError::new(line, None, format!("unreadable line: {e}")));
            }
        }
    }
    if !unreadable.is_empty() {
        return Err(unreadable);
    }
    if rows.is_empty() && errors.is_empty() {
        return Err(vec![RowError::new(1, None, "the file has no data rows")]);
    }
    Ok(Table {
        columns,
        rows,
        errors,
    })
}

impl Table {
    /// The data rows whose every cell passed the text rule, with their line numbers.
    pub fn rows(&self) -> impl Iterator<Item = Row<'_>> {
        self.rows.iter().map(|(line, record)| Row {
            table: self,
            line: *line,
            record,
        })
    }

    /// The layout's rows, or every problem of the file in line order: the bad cells found while
    /// reading and the layout's own `errors`.
    pub fn finish<T>(self, rows: Vec<T>, errors: Vec<RowError>) -> Result<Vec<T>, Vec<RowError>> {
        let mut all = self.errors;
        all.extend(errors);
        if all.is_empty() {
            return Ok(rows);
        }
        all.sort_by_key(|e| e.line);
        Err(all)
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
    fn number<T: FromStr>(&self, column: &str, errors: &mut Vec<RowError>) -> Option<T> {
        let v = self.text(column)?;
        v.parse()
            .map_err(|_| errors.push(self.error(column, format!("{v:?} is not a number"))))
            .ok()
    }

    /// An optional finite number: `inf`, `NaN` and numbers beyond `f64` are errors (PostgreSQL
    /// would store them, and JSON has no way to show them).
    pub fn float(&self, column: &str, errors: &mut Vec<RowError>) -> Option<f64> {
        let v = self.number::<f64>(column, errors)?;
        if v.is_finite() {
            Some(v)
        } else {
            errors.push(self.error(column, format!("{column} must be a finite number")));
            None
        }
    }

    /// An optional finite number within `min..=max`.
    pub fn float_in(
        &self,
        column: &str,
        min: f64,
        max: f64,
        errors: &mut Vec<RowError>,
    ) -> Option<f64> {
        self.float(column, errors)
            .and_then(|v| self.within(column, v, min, max, errors))
    }

    /// An optional integer within `min..=max`.
    pub fn int_in<T>(&self, column: &str, min: T, max: T, errors: &mut Vec<RowError>) -> Option<T>
    where
        T: FromStr + PartialOrd + Display,
    {
        self.number::<T>(column, errors)
            .and_then(|v| self.within(column, v, min, max, errors))
    }

    fn within<T: PartialOrd + Display>(
        &self,
        column: &str,
        v: T,
        min: T,
        max: T,
        errors: &mut Vec<RowError>,
    ) -> Option<T> {
        if v < min || v > max {
            errors.push(self.error(column, format!("{column} must be between {min} and {max}")));
            return None;
        }
        Some(v)
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

    fn requiring<'a>(required: &'a [&'a str]) -> Layout<'a> {
        Layout {
            required,
            max_chars: &[],
        }
    }

    #[test]
    fn header_rows_and_line_numbers() {
        let t = read(
            b"\xEF\xBB\xBFDate, Value ,x\n2024-01-02,1.5,\n\n2024-01-03,abc,y\n",
            requiring(&["date"]),
        )
        .unwrap();
        let rows: Vec<Row<'_>> = t.rows().collect();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].line, rows[1].line), (2, 4));
        let mut errors = Vec::new();
        assert_eq!(rows[0].float("value", &mut errors), Some(1.5));
        assert_eq!(rows[0].text("x"), None);
        assert_eq!(rows[1].float("value", &mut errors), None);
        assert_eq!(
            errors,
            vec![RowError::new(4, Some("value"), "\"abc\" is not a number")]
        );
        let missing = read(b"a,b\n1,2\n", requiring(&["date", "a"])).unwrap_err();
        assert_eq!(
            missing,
            vec![RowError::new(
                1,
                Some("date"),
                "the header has no date column"
            )]
        );
        assert!(read(b"date\n", requiring(&["date"])).is_err());
    }

    #[test]
    fn bad_cells_are_errors_of_their_line_and_column_and_their_rows_are_held_back() {
        let layout = Layout {
            required: &["name"],
            max_chars: &[("name", 5)],
        };
        let t = read(
            b"name,note\nAna,ok\tfine\nA\0na,\nBo,a\x1bb\nCarla,\nDaniela,\nEd,x,\x07\n",
            layout,
        )
        .unwrap();
        let names: Vec<&str> = t.rows().filter_map(|r| r.text("name")).collect();
        assert_eq!(names, ["Ana", "Carla"]);
        let layout_errors = vec![RowError::new(2, Some("name"), "a layout's own error")];
        let all = t.finish(vec![(); 2], layout_errors).unwrap_err();
        let control = "must not contain control characters (only tab is allowed)";
        assert_eq!(
            all,
            [
                RowError::new(2, Some("name"), "a layout's own error"),
                RowError::new(3, Some("name"), "name must not contain a NUL character"),
                RowError::new(4, Some("note"), format!("note {control}")),
                RowError::new(6, Some("name"), "name is longer than 5 characters"),
                RowError::new(7, None, format!("cell 3 {control}")),
            ]
        );
        let long = format!("name\n{}\n", "x".repeat(text::MAX_CELL_CHARS + 1));
        let t = read(long.as_bytes(), requiring(&["name"])).unwrap();
        assert_eq!(t.rows().count(), 0);
        assert!(t.finish(Vec::<()>::new(), Vec::new()).is_err());
        assert!(read(b"na\0me\nx\n", requiring(&[])).is_err());
    }

    #[test]
    fn numbers_are_finite_and_in_range() {
        let t = read(
            b"a,b,c,d\ninf,-inf,NaN,1e400\n1e308,101,-1,7\n",
            requiring(&[]),
        )
        .unwrap();
        let rows: Vec<Row<'_>> = t.rows().collect();
        let mut errors = Vec::new();
        for c in ["a", "b", "c", "d"] {
            assert_eq!(rows[0].float(c, &mut errors), None);
        }
        assert!(
            errors
                .iter()
                .all(|e| e.message.ends_with("must be a finite number")),
            "{errors:?}"
        );
        errors.clear();
        assert_eq!(rows[1].float("a", &mut errors), Some(1e308));
        assert_eq!(rows[1].float_in("a", 0.0, 100.0, &mut errors), None);
        assert_eq!(rows[1].float_in("b", 0.0, 100.0, &mut errors), None);
        assert_eq!(rows[1].int_in("c", 0, 1000, &mut errors), None);
        assert_eq!(rows[1].int_in("d", 0, 1000, &mut errors), Some(7));
        let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "a must be between 0 and 100",
                "b must be between 0 and 100",
                "c must be between 0 and 1000"
            ]
        );
    }
}
