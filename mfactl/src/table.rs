//! Plain text tables and the one place that makes text safe for a terminal.

use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// Columns separated by two spaces, a header row, no trailing blanks.
pub struct Table {
    headers: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[(&'static str, Align)]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Add a row; cells beyond the header count are ignored, missing ones
    /// are empty. Cells are made printable here, so callers pass raw text.
    pub fn push(&mut self, cells: Vec<String>) {
        let mut row: Vec<String> = cells
            .into_iter()
            .take(self.headers.len())
            .map(|c| printable(&c).into_owned())
            .collect();
        row.resize(self.headers.len(), String::new());
        self.rows.push(row);
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|(h, _)| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        let mut out = String::new();
        let header: Vec<&str> = self.headers.iter().map(|(h, _)| *h).collect();
        for row in std::iter::once(header).chain(
            self.rows
                .iter()
                .map(|r| r.iter().map(String::as_str).collect()),
        ) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = " ".repeat(widths[i] - width(cell));
                match self.headers[i].1 {
                    Align::Left => {
                        line.push_str(cell);
                        line.push_str(&pad);
                    }
                    Align::Right => {
                        line.push_str(&pad);
                        line.push_str(cell);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Display width in terminal columns, counting one per character (labels
/// are short and mostly ASCII; wide characters only misalign a row).
fn width(s: &str) -> usize {
    s.chars().count()
}

/// Text from elsewhere (labels and user names chosen by other users,
/// messages from mfad) with terminal control and bidi override characters
/// replaced, so it cannot move the cursor, recolour or reorder the screen.
pub fn printable(s: &str) -> Cow<'_, str> {
    fn unsafe_char(c: char) -> bool {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
    if s.chars().any(unsafe_char) {
        Cow::Owned(
            s.chars()
                .map(|c| if unsafe_char(c) { '\u{fffd}' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_lines_have_no_trailing_blanks() {
        let mut t = Table::new(&[
            ("ID", Align::Left),
            ("N", Align::Right),
            ("LABEL", Align::Left),
        ]);
        t.push(vec!["a".into(), "7".into(), "phone".into()]);
        t.push(vec!["bbbb".into(), "12".into(), String::new()]);
        assert_eq!(t.render(), "ID     N  LABEL\na      7  phone\nbbbb  12\n");
    }

    #[test]
    fn header_only_when_empty() {
        let t = Table::new(&[("USER", Align::Left), ("MFA", Align::Left)]);
        assert_eq!(t.render(), "USER  MFA\n");
    }

    #[test]
    fn rows_are_fitted_to_the_header() {
        let mut t = Table::new(&[("A", Align::Left), ("B", Align::Left)]);
        t.push(vec!["x".into()]);
        t.push(vec!["1".into(), "2".into(), "3".into()]);
        assert_eq!(t.render(), "A  B\nx\n1  2\n");
    }

    #[test]
    fn width_counts_characters_not_bytes() {
        let mut t = Table::new(&[("L", Align::Left), ("X", Align::Left)]);
        t.push(vec!["clé".into(), "1".into()]);
        t.push(vec!["abcd".into(), "2".into()]);
        assert_eq!(t.render(), "L     X\nclé   1\nabcd  2\n");
    }

    #[test]
    fn control_and_bidi_characters_are_neutralised() {
        assert_eq!(printable("plain label"), "plain label");
        assert!(matches!(printable("plain"), Cow::Borrowed(_)));
        assert_eq!(printable("a\x1b[31mb"), "a\u{fffd}[31mb");
        assert_eq!(printable("x\ny\r\t"), "x\u{fffd}y\u{fffd}\u{fffd}");
        assert_eq!(printable("evil\u{202e}gpj.exe"), "evil\u{fffd}gpj.exe");
        let mut t = Table::new(&[("LABEL", Align::Left)]);
        t.push(vec!["\x07bell".into()]);
        assert_eq!(t.render(), "LABEL\n\u{fffd}bell\n");
    }
}
