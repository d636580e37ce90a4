//! Prometheus text exposition to `name{labels}` -> value, for assertions and reports, and
//! the two summaries both sides read from it: a metric over all its label sets, and a
//! histogram's mean.

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

/// Sum of every series of a metric (all label sets, and the unlabelled one).
pub fn metric_total(metrics: &BTreeMap<String, f64>, name: &str) -> f64 {
    let labelled = format!("{name}{{");
    metrics
        .iter()
        .filter(|(k, _)| *k == name || k.starts_with(&labelled))
        .map(|(_, v)| v)
        .sum()
}

/// Mean of a Prometheus histogram (`_sum / _count`), if it has observations.
pub fn histogram_mean(metrics: &BTreeMap<String, f64>, name: &str) -> Option<f64> {
    let sum = metrics.get(&format!("{name}_sum"))?;
    let count = metrics.get(&format!("{name}_count"))?;
    (*count > 0.0).then(|| sum / count)
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

    #[test]
    fn totals_and_histogram_means() {
        let text = "# HELP x\n# TYPE x counter\nels_batch_size_events_sum 1000\n\
                    els_batch_size_events_count 4\n\
                    els_events_dead_lettered_total{reason=\"rejected\"} 2\n\
                    els_events_dead_lettered_total{reason=\"rate_limited\"} 1\n\
                    els_events_dead_lettered_totally_else 7\n\
                    els_events_delivered_total 998\n";
        let m = parse_metrics(text);
        assert_eq!(histogram_mean(&m, "els_batch_size_events"), Some(250.0));
        assert_eq!(metric_total(&m, "els_events_dead_lettered_total"), 3.0);
        assert_eq!(metric_total(&m, "els_events_delivered_total"), 998.0);
        assert_eq!(histogram_mean(&m, "nope"), None);
    }
}
