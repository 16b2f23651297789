//! alerts.yml's rules and PromQL expressions, read for the names they use.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Default)]
pub(super) struct AlertRule {
    pub(super) name: String,
    pub(super) expr: String,
    pub(super) severity: Option<String>,
    pub(super) annotations: BTreeMap<String, String>,
}

pub(super) fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

pub(super) fn unquote(v: &str) -> String {
    let v = v.trim();
    v.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
        .unwrap_or(v)
        .to_string()
}

/// A key's value at `lines[i]` (`key: value`), or the block scalar under it (`key: |`, `>-`...).
pub(super) fn value_at(lines: &[&str], i: usize, key_value: &str) -> (String, usize) {
    let v = key_value.trim();
    if !matches!(v, "|" | "|-" | ">" | ">-") {
        return (unquote(v), i + 1);
    }
    let base = indent(lines[i]);
    let mut j = i + 1;
    let mut body = Vec::new();
    while j < lines.len() && (lines[j].trim().is_empty() || indent(lines[j]) > base) {
        body.push(lines[j].trim());
        j += 1;
    }
    let sep = if v.starts_with('|') { "\n" } else { " " };
    (body.join(sep).trim().to_string(), j)
}

pub(super) fn alert_rules(text: &str) -> Vec<AlertRule> {
    let lines: Vec<&str> = text.lines().collect();
    let mut rules: Vec<AlertRule> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim();
        if t.starts_with('#') {
            i += 1;
            continue;
        }
        if let Some(name) = t.strip_prefix("- alert:") {
            rules.push(AlertRule {
                name: name.trim().to_string(),
                ..AlertRule::default()
            });
            i += 1;
            continue;
        }
        let Some(rule) = rules.last_mut() else {
            i += 1;
            continue;
        };
        let Some((key, rest)) = t.split_once(':') else {
            i += 1;
            continue;
        };
        let (value, next) = value_at(&lines, i, rest);
        match key {
            "expr" => rule.expr = value,
            "severity" => rule.severity = Some(value),
            "summary" | "description" | "runbook_url" => {
                rule.annotations.insert(key.to_string(), value);
            }
            _ => {}
        }
        i = next;
    }
    rules
}

// ---------------------------------------------------------------------------------------------
// PromQL, scanned for what it names: metric names with the labels their selectors match, and
// the labels of `by`/`without`/`on`/`ignoring`. Function names, keywords, strings, numbers,
// durations, ranges and Grafana's `$variables` are skipped.

#[derive(Debug, Default, PartialEq)]
pub(super) struct Names {
    /// Each selector: the metric and the labels it matches on.
    pub(super) metrics: Vec<(String, Vec<String>)>,
    /// Labels named by grouping and vector-matching clauses (and `label_values`).
    pub(super) grouping: BTreeSet<String>,
}

const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
const LABEL_LISTS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];
const OPERATORS: &[&str] = &["and", "or", "unless", "offset", "bool", "atan2", "inf", "nan"];

pub(super) fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

pub(super) fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

pub(super) struct Scanner<'a> {
    pub(super) s: &'a [u8],
    pub(super) i: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).map(|&b| b as char)
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.i += 1;
        }
    }

    fn ident(&mut self) -> String {
        let start = self.i;
        while self.peek().is_some_and(is_ident) {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }

    /// Skips a quoted string starting at the quote.
    fn string(&mut self) {
        let Some(q) = self.peek() else { return };
        self.i += 1;
        while let Some(c) = self.peek() {
            self.i += 1;
            if c == '\\' && q != '`' {
                self.i += 1;
            } else if c == q {
                return;
            }
        }
    }

    /// Skips `${name}` or `$name`.
    fn variable(&mut self) {
        self.i += 1;
        if self.peek() == Some('{') {
            while self.peek().is_some_and(|c| c != '}') {
                self.i += 1;
            }
            self.i += 1;
        } else {
            self.ident();
        }
    }

    /// `{a="x", b=~"y"}` from its `{`: the label names.
    pub(super) fn matchers(&mut self) -> Vec<String> {
        self.names_until('}', true)
    }

    /// `(a, b)` from its `(`: the label names.
    fn label_list(&mut self) -> Vec<String> {
        self.names_until(')', false)
    }

    /// The label names of a list opened at the current character and closed by `close`; with
    /// `matchers`, each name is followed by an operator and a quoted value, skipped.
    fn names_until(&mut self, close: char, matchers: bool) -> Vec<String> {
        self.i += 1;
        let mut labels = Vec::new();
        loop {
            self.skip_ws();
            match self.peek() {
                None => return labels,
                Some(c) if c == close => {
                    self.i += 1;
                    return labels;
                }
                Some(',') => self.i += 1,
                Some(c) if is_ident_start(c) => {
                    labels.push(self.ident());
                    if matchers {
                        self.skip_ws();
                        while self.peek().is_some_and(|c| matches!(c, '=' | '!' | '~')) {
                            self.i += 1;
                        }
                        self.skip_ws();
                        if matches!(self.peek(), Some('"' | '\'' | '`')) {
                            self.string();
                        }
                    }
                }
                Some(other) => panic!("unexpected {other:?} in a label list"),
            }
        }
    }
}

pub(super) fn promql_names(expr: &str) -> Names {
    // Grafana's `label_values(selector, label)`: a selector, then a label name.
    if let Some(inner) = expr.trim().strip_prefix("label_values(").and_then(|r| r.strip_suffix(')')) {
        let mut names = Names::default();
        match inner.rsplit_once(',') {
            Some((selector, label)) => {
                names = promql_names(selector);
                names.grouping.insert(label.trim().to_string());
            }
            None => {
                names.grouping.insert(inner.trim().to_string());
            }
        }
        return names;
    }
    let mut names = Names::default();
    let mut sc = Scanner { s: expr.as_bytes(), i: 0 };
    while let Some(c) = sc.peek() {
        match c {
            '"' | '\'' | '`' => sc.string(),
            '$' => sc.variable(),
            '[' => {
                while sc.peek().is_some_and(|c| c != ']') {
                    sc.i += 1;
                }
                sc.i += 1;
            }
            '{' => {
                sc.matchers();
            }
            c if c.is_ascii_digit() || (c == '.' && sc.s.get(sc.i + 1).is_some_and(u8::is_ascii_digit)) => {
                while sc.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == '.') {
                    sc.i += 1;
                }
            }
            c if is_ident_start(c) => {
                let word = sc.ident();
                sc.skip_ws();
                let lower = word.to_ascii_lowercase();
                if LABEL_LISTS.contains(&word.as_str()) {
                    if sc.peek() == Some('(') {
                        names.grouping.extend(sc.label_list());
                    }
                } else if AGGREGATIONS.contains(&word.as_str()) || OPERATORS.contains(&lower.as_str()) || sc.peek() == Some('(') {
                    // An aggregation, an operator, a keyword or a function.
                } else {
                    let labels = if sc.peek() == Some('{') { sc.matchers() } else { Vec::new() };
                    names.metrics.push((word, labels));
                }
            }
            _ => sc.i += 1,
        }
    }
    names
}

#[test]
pub(super) fn the_promql_scanner_finds_metrics_and_labels_and_nothing_else() {
    let n = promql_names(
        r#"histogram_quantile(0.95, sum by (le, destination) (rate(hcc_x_bucket{job="$job", a=~"b|c", s!="}"}[$__rate_interval])))
           > 0.5 and on(instance) up{job="hcc"} == 0 or count(y > 0) or vector(0) unless z offset 1h
           / ignoring (q) sum(w) without (r, s) > bool 1e3"#,
    );
    let metrics: Vec<(&str, Vec<&str>)> = n
        .metrics
        .iter()
        .map(|(m, l)| (m.as_str(), l.iter().map(String::as_str).collect()))
        .collect();
    assert_eq!(
        metrics,
        [
            ("hcc_x_bucket", vec!["job", "a", "s"]),
            ("up", vec!["job"]),
            ("y", vec![]),
            ("z", vec![]),
            ("w", vec![])
        ]
    );
    assert_eq!(
        n.grouping.iter().map(String::as_str).collect::<Vec<_>>(),
        ["destination", "instance", "le", "q", "r", "s"]
    );
    let lv = promql_names(r#"label_values(hcc_breaker_state{job="$job"}, instance)"#);
    assert_eq!(lv.metrics, [("hcc_breaker_state".to_string(), vec!["job".to_string()])]);
    assert_eq!(lv.grouping.iter().collect::<Vec<_>>(), ["instance"]);
}

// ---------------------------------------------------------------------------------------------
// The dashboard.
