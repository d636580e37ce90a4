//! Prometheus text exposition to `name{labels}` -> value, for assertions and reports.

use std::collections::BTreeMap;

/// Every sample line of `text`, keyed by its name with labels as written.
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_with_and_without_labels() {
        let m = parse_metrics(
            "# HELP x y\n# TYPE x counter\nels_a_total 3\nels_b{reason=\"x y\"} 1.5\n\nbad\n",
        );
        assert_eq!(m["els_a_total"], 3.0);
        assert_eq!(m["els_b{reason=\"x y\"}"], 1.5);
        assert_eq!(m.len(), 2);
    }
}
