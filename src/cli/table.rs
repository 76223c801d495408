//! The tables the CLI prints: each column as wide as its widest cell, so a long value
//! (`no-carrier`, a long node or lab name) never pushes the rest of its row out of line.

/// Rows of cells. The last cell of a row is not measured unless right-aligned: the last
/// column is never padded, and a row shorter than the header ends in free text (an error
/// under a node, a problem) that should widen no column.
pub struct Table {
    /// Per column: right-aligned (numbers) or not.
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// `header` names the columns; a name ending in `>` is right-aligned (the `>` is
    /// not printed). An empty header: a table without a header line.
    pub fn new(header: &[&str]) -> Self {
        let right = header.iter().map(|h| h.ends_with('>')).collect();
        let head: Vec<String> = header
            .iter()
            .map(|h| h.trim_end_matches('>').to_string())
            .collect();
        let rows = if head.is_empty() { vec![] } else { vec![head] };
        Table { right, rows }
    }

    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// The lines, cells two spaces apart, without trailing blanks.
    pub fn lines(&self) -> Vec<String> {
        let mut widths: Vec<usize> = Vec::new();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                let right = self.right.get(i).copied().unwrap_or(false);
                if i + 1 == r.len() && !right {
                    continue;
                }
                if widths.len() <= i {
                    widths.resize(i + 1, 0);
                }
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        self.rows
            .iter()
            .map(|r| {
                let mut line = String::new();
                for (i, c) in r.iter().enumerate() {
                    if i > 0 {
                        line.push_str("  ");
                    }
                    let fill = widths.get(i).copied().unwrap_or(0);
                    let fill = fill.saturating_sub(c.chars().count());
                    let right = self.right.get(i).copied().unwrap_or(false);
                    if right {
                        line.extend(std::iter::repeat_n(' ', fill));
                    }
                    line.push_str(c);
                    if !right && i + 1 < r.len() {
                        line.extend(std::iter::repeat_n(' ', fill));
                    }
                }
                line.trim_end().to_string()
            })
            .collect()
    }

    pub fn print(&self) {
        for l in self.lines() {
            crate::outln!("{l}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let mut t = Table::new(&["NODE", "LINK", "MTU>", "ADDRESSES"]);
        t.row(["r1", "no-carrier", "1500", "10.0.0.1/31"]);
        t.row(["a-long-node-name", "up", "65536", ""]);
        t.row(["", "! init is dead"]);
        assert_eq!(
            t.lines(),
            [
                "NODE              LINK          MTU  ADDRESSES",
                "r1                no-carrier   1500  10.0.0.1/31",
                "a-long-node-name  up          65536",
                "                  ! init is dead",
            ]
        );
    }
}
