//! Tables as the listing commands print them (ps, network ls).

use std::io::Write;

/// Prints `rows` as aligned columns (the last one not padded), in one write where it fits
/// (stdout alone would write every line on its own: a thousand system calls for `ps`). A
/// reader that went away (`berth ps | head`) ends the listing quietly; any other failure to
/// write is returned.
pub fn print_columns(rows: &[Vec<String>]) -> std::io::Result<()> {
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
        if let Err(e) = writeln!(out, "{}", line.join("  ").trim_end()) {
            return quiet_if_the_reader_left(e);
        }
    }
    out.flush().or_else(quiet_if_the_reader_left)
}

fn quiet_if_the_reader_left(error: std::io::Error) -> std::io::Result<()> {
    match error.kind() {
        std::io::ErrorKind::BrokenPipe => Ok(()),
        _ => Err(error),
    }
}
