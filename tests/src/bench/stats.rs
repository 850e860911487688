//! Percentiles and Markdown tables.

/// p50 and p99 of a set of durations, nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Percentiles {
    pub p50: u64,
    pub p99: u64,
}

impl Percentiles {
    /// Nearest-rank percentiles; `None` for no samples.
    pub fn of(samples: &[u64]) -> Option<Percentiles> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let rank = |p: u64| {
            let n = sorted.len() as u64;
            let r = (p * n).div_ceil(100).clamp(1, n);
            sorted[(r - 1) as usize]
        };
        Some(Percentiles {
            p50: rank(50),
            p99: rank(99),
        })
    }
}

/// Milliseconds with microsecond resolution.
pub fn ms(ns: u64) -> String {
    format!("{:.3} ms", ns as f64 / 1e6)
}

/// `p50`/`p99` cells, or dashes without samples.
pub fn cells(p: Option<Percentiles>) -> [String; 2] {
    match p {
        Some(p) => [ms(p.p50), ms(p.p99)],
        None => ["–".into(), "–".into()],
    }
}

/// 1234567 → "1,234,567".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A Markdown table; columns after the first are right-aligned (numbers)
/// unless the table is made [`Table::text`].
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    numeric: bool,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
            numeric: true,
        }
    }

    /// Every column left-aligned.
    pub fn text(mut self) -> Table {
        self.numeric = false;
        self
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self
            .header
            .iter()
            .map(|h| h.chars().count().max(3))
            .collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut out = String::from("|");
            for (i, width) in widths.iter().enumerate() {
                let cell = cells.get(i).map(String::as_str).unwrap_or("");
                let pad = width - cell.chars().count();
                if i == 0 || !self.numeric {
                    out.push_str(&format!(" {cell}{} |", " ".repeat(pad)));
                } else {
                    out.push_str(&format!(" {}{cell} |", " ".repeat(pad)));
                }
            }
            out.push('\n');
            out
        };
        let mut out = line(&self.header);
        out.push('|');
        for (i, width) in widths.iter().enumerate() {
            let dashes = "-".repeat(*width);
            if i == 0 || !self.numeric {
                out.push_str(&format!(" {dashes} |"));
            } else {
                out.push_str(&format!(" {}: |", &dashes[1..]));
            }
        }
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let samples: Vec<u64> = (1..=100).collect();
        assert_eq!(
            Percentiles::of(&samples),
            Some(Percentiles { p50: 50, p99: 99 })
        );
        assert_eq!(Percentiles::of(&[7]), Some(Percentiles { p50: 7, p99: 7 }));
        assert_eq!(Percentiles::of(&[]), None);
    }

    #[test]
    fn formatting() {
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(ms(693_400), "0.693 ms");
        let mut t = Table::new(&["a", "b"]);
        t.row(vec!["x".into(), "1".into()]);
        assert_eq!(t.render(), "| a   |   b |\n| --- | --: |\n| x   |   1 |\n");
    }
}
