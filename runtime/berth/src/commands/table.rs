//! Tables as the listing commands print them (ps, network ls).

use std::io::Write;

/// Prints `rows` as aligned columns (the last one not padded), in one write where it fits
/// (stdout alone would write every line on its own: a thousand system calls for `ps`).
pub fn print_columns(rows: &[Vec<String>]) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| match i + 1 == columns {
                true => cell.clone(),
                false => format!("{cell:<width$}", width = widths[i]),
            })
            .collect();
        // A closed stdout (`berth ps | head`) ends the listing, as println's panic would not.
        if writeln!(out, "{}", line.join("  ").trim_end()).is_err() {
            return;
        }
    }
    let _ = out.flush();
}
