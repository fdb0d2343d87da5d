//! Tables as the listing commands print them (ps, network ls).

/// Prints `rows` as aligned columns (the last one not padded).
pub fn print_columns(rows: &[Vec<String>]) {
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
        println!("{}", line.join("  ").trim_end());
    }
}
