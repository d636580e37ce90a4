//! Turning API answers into text: the `--output` choice, aligned tables, and making text from
//! the network safe to put on a terminal (one line, no control characters, bounded length).

use std::fmt::Write as _;

use serde_json::Value;

/// How results are printed (`--output`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable tables and summary lines.
    #[default]
    Table,
    /// The admin API's JSON answer, pretty-printed (for scripts and `jq`).
    Json,
}

/// Pretty JSON followed by a newline. `serde_json` escapes control characters inside
/// strings, so this is terminal-safe as is.
pub fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    text.push('\n');
    text
}

/// Left-aligned columns separated by two spaces; the last column is not padded, so lines
/// carry no trailing blanks. Widths count characters, not bytes.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let columns = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut current = String::new();
        for (i, cell) in cells.enumerate().take(columns) {
            if i + 1 == columns {
                current.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                let _ = write!(current, "{cell}{:pad$}  ", "");
            }
        }
        text.push_str(current.trim_end());
        text.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    text
}

/// Text from the network (SIEM bodies, error strings) made safe for one table cell:
/// whitespace runs (including newlines) become one space and other control characters (such
/// as terminal escape sequences) are shown escaped, so a hostile body cannot drive the terminal.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_space = false;
    for c in text.trim().chars() {
        if c.is_whitespace() {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
            continue;
        }
        in_space = false;
        push_visible(&mut out, c);
    }
    out
}

/// Like [`one_line`] but keeps line breaks (for multi-line body excerpts).
pub fn visible(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\n' || c == '\t' {
            out.push(c);
        } else if c == '\r' {
            continue;
        } else {
            push_visible(&mut out, c);
        }
    }
    out
}

fn push_visible(out: &mut String, c: char) {
    if c.is_control() {
        let _ = write!(out, "{}", c.escape_unicode());
    } else {
        out.push(c);
    }
}

/// At most `max` characters; a cut is marked with `…` (which counts toward `max`).
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A JSON value as a table cell: strings without quotes, `null`/absent as `-`.
pub fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(s)) if s.is_empty() => "-".to_string(),
        Some(Value::String(s)) => one_line(s),
        Some(other) => one_line(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_aligns_columns_by_characters_without_trailing_blanks() {
        let text = table(
            &["ID", "ORG", "ERROR"],
            &[
                vec!["1".into(), "org-ü".into(), "boom".into()],
                vec!["12345".into(), "o".into(), "".into()],
            ],
        );
        assert_eq!(
            text,
            "ID     ORG    ERROR\n\
             1      org-ü  boom\n\
             12345  o\n"
        );
    }

    #[test]
    fn table_with_no_rows_is_just_the_header() {
        assert_eq!(table(&["A", "B"], &[]), "A  B\n");
    }

    #[test]
    fn truncate_counts_characters_and_marks_the_cut() {
        assert_eq!(truncate("short", 60), "short");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("ääää", 3), "ää…");
        assert_eq!(truncate(&"x".repeat(100), 60).chars().count(), 60);
    }

    #[test]
    fn one_line_collapses_whitespace_and_escapes_control_characters() {
        assert_eq!(one_line("  a\n\n b\t c  "), "a b c");
        assert_eq!(one_line("red\u{1b}[31m"), "red\\u{1b}[31m");
    }

    #[test]
    fn visible_keeps_newlines_but_escapes_escapes() {
        assert_eq!(visible("a\r\nb\u{7}"), "a\nb\\u{7}");
    }

    #[test]
    fn cells_render_json_values() {
        assert_eq!(cell(None), "-");
        assert_eq!(cell(Some(&json!(null))), "-");
        assert_eq!(cell(Some(&json!(""))), "-");
        assert_eq!(cell(Some(&json!("FLOW_START"))), "FLOW_START");
        assert_eq!(cell(Some(&json!(502))), "502");
    }

    #[test]
    fn pretty_ends_with_a_newline() {
        assert_eq!(pretty(&json!({"a": 1})), "{\n  \"a\": 1\n}\n");
    }
}
