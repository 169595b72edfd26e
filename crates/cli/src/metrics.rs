//! Prometheus metrics: the [`Snapshot`](crate::status::Snapshot) figures in the text
//! exposition format, served by a minimal HTTP/1.0 responder on tokio (any path answers; one
//! request per connection). It binds where the user says, loopback by default.

use std::fmt::Write as _;
use std::net::SocketAddr;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::status::{Shared, Snapshot, State};

/// Renders the snapshot as Prometheus text.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = writeln!(out, "# HELP redis_sync_{name} {help}");
        let _ = writeln!(out, "# TYPE redis_sync_{name} {kind}");
        let _ = writeln!(out, "redis_sync_{name} {value}");
    };
    let state = [
        State::Connecting,
        State::FullSync,
        State::Sweeping,
        State::Streaming,
        State::Reconnecting,
        State::Stopping,
        State::Stopped,
    ]
    .iter()
    .position(|st| *st == s.state)
    .unwrap_or(0);
    metric(
        "state",
        "gauge",
        "0 connecting, 1 full-sync, 2 sweeping, 3 streaming, 4 reconnecting, 5 stopping, 6 stopped",
        state as f64,
    );
    let g = "gauge";
    let c = "counter";
    metric(
        "rdb_size_bytes",
        g,
        "RDB payload size (0 when diskless)",
        s.rdb_size.unwrap_or(0) as f64,
    );
    metric(
        "rdb_received_bytes",
        g,
        "RDB payload bytes received and parsed",
        s.rdb_bytes_received as f64,
    );
    metric(
        "rdb_keys_parsed",
        g,
        "Keys parsed from the RDB",
        s.rdb_keys_parsed as f64,
    );
    metric(
        "rdb_keys_written",
        g,
        "Keys of the RDB written to the target",
        s.rdb_keys_written as f64,
    );
    metric(
        "keys_swept_total",
        c,
        "Target keys removed after a full copy",
        s.keys_swept as f64,
    );
    metric(
        "received_offset",
        g,
        "Source replication offset received",
        s.received_offset as f64,
    );
    metric(
        "applied_offset",
        g,
        "Source replication offset applied to the target",
        s.applied_offset as f64,
    );
    metric(
        "commands_received_total",
        c,
        "Commands received from the source stream",
        s.commands_received as f64,
    );
    metric(
        "commands_applied_total",
        c,
        "Commands applied to the target",
        s.commands_applied as f64,
    );
    metric(
        "commands_filtered_total",
        c,
        "Commands dropped by the filters",
        s.commands_filtered as f64,
    );
    metric(
        "lag_bytes",
        g,
        "Received minus applied offset",
        s.lag_bytes as f64,
    );
    metric(
        "lag_seconds",
        g,
        "Age of the oldest command not yet applied",
        s.lag_secs,
    );
    if let Some(h) = s.heartbeat_lag_secs {
        metric(
            "heartbeat_lag_seconds",
            g,
            "Heartbeat key round trip source to target",
            h,
        );
    }
    metric(
        "target_errors_total",
        c,
        "Error replies from the target",
        s.target_errors as f64,
    );
    metric(
        "dead_letter_total",
        c,
        "Commands skipped into the dead-letter file",
        s.skipped_to_dead_letter as f64,
    );
    metric(
        "source_read_bytes_total",
        c,
        "Bytes read from the source",
        s.bytes_read as f64,
    );
    metric(
        "target_written_bytes_total",
        c,
        "Bytes written to the target",
        s.bytes_written as f64,
    );
    metric(
        "spooled_bytes",
        g,
        "Stream bytes waiting in the spool file",
        s.spooled_bytes as f64,
    );
    metric(
        "full_syncs_total",
        c,
        "Full synchronisations",
        s.full_syncs as f64,
    );
    metric(
        "partial_syncs_total",
        c,
        "Partial resynchronisations",
        s.partial_syncs as f64,
    );
    metric(
        "link_losses_total",
        c,
        "Replication links lost",
        s.link_losses as f64,
    );
    metric("uptime_seconds", g, "Seconds since start", s.uptime_secs);
    out
}

/// Renders several runs (the shards of a cluster source) as one exposition: each family once,
/// with a `shard="host:port"` label on each run's sample.
pub fn render_all(views: &[(Option<String>, Snapshot)]) -> String {
    if let [(None, s)] = views {
        return render(s);
    }
    // Families in the order `render` writes them: (the HELP and TYPE lines, samples).
    let mut families: Vec<(String, Vec<String>)> = Vec::new();
    for (label, snap) in views {
        let label = label.as_deref().unwrap_or("");
        let mut i = 0;
        for line in render(snap).lines() {
            if line.starts_with("# HELP") {
                i = match families.iter().position(|(h, _)| h.starts_with(line)) {
                    Some(i) => i,
                    None => {
                        families.push((format!("{line}\n"), Vec::new()));
                        families.len() - 1
                    }
                };
            } else if line.starts_with("# TYPE") {
                if families[i].1.is_empty() && !families[i].0.contains("# TYPE") {
                    families[i].0.push_str(line);
                    families[i].0.push('\n');
                }
            } else if let Some((name, value)) = line.split_once(' ') {
                let escaped = label.replace('\\', "\\\\").replace('"', "\\\"");
                families[i]
                    .1
                    .push(format!("{name}{{shard=\"{escaped}\"}} {value}"));
            }
        }
    }
    let mut out = String::new();
    for (head, samples) in families {
        out.push_str(&head);
        for s in samples {
            let _ = writeln!(out, "{s}");
        }
    }
    out
}

/// Binds `addr` and serves the metrics of `views` (one run, or one per shard of a cluster
/// source, labelled) until the task is aborted. Returns the bound address (port 0 picks a free
/// one).
pub async fn serve(
    addr: SocketAddr,
    views: Vec<(Option<String>, Shared)>,
) -> anyhow::Result<SocketAddr> {
    let views = std::sync::Arc::new(views);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot serve metrics on {addr}"))?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                continue;
            };
            let views = views.clone();
            tokio::spawn(async move {
                // Read the request head (bounded), answer, close.
                let mut buf = vec![0u8; 4096];
                let mut n = 0;
                while n < buf.len() {
                    match tokio::time::timeout(
                        std::time::Duration::from_secs(5),
                        sock.read(&mut buf[n..]),
                    )
                    .await
                    {
                        Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
                        Ok(Ok(k)) => n += k,
                    }
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let body = {
                    let snaps: Vec<(Option<String>, Snapshot)> = views
                        .iter()
                        .map(|(l, v)| {
                            (
                                l.clone(),
                                v.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                            )
                        })
                        .collect();
                    render_all(&snaps)
                };
                let head = format!(
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(body.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_render_as_one_exposition_with_a_label_each() {
        let a = Snapshot {
            commands_applied: 7,
            ..Snapshot::default()
        };
        let b = Snapshot {
            commands_applied: 9,
            ..Snapshot::default()
        };
        let text = render_all(&[
            (Some("10.0.0.1:7000".into()), a),
            (Some("10.0.0.2:7000".into()), b),
        ]);
        let help = text.lines().filter(|l| l.starts_with("# HELP")).count();
        assert_eq!(help, render(&Snapshot::default()).matches("# HELP").count());
        let applied: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("redis_sync_commands_applied"))
            .collect();
        assert_eq!(
            applied,
            [
                "redis_sync_commands_applied_total{shard=\"10.0.0.1:7000\"} 7",
                "redis_sync_commands_applied_total{shard=\"10.0.0.2:7000\"} 9"
            ]
        );
        // Each family's samples follow its HELP and TYPE lines.
        let at = text
            .find("# TYPE redis_sync_commands_applied")
            .expect("a TYPE line");
        assert!(
            text[at..]
                .lines()
                .nth(1)
                .is_some_and(|l| l.contains("10.0.0.1"))
        );
    }

    #[test]
    fn renders_every_figure_without_secrets() {
        let s = Snapshot {
            applied_offset: 7,
            source: "redis://:***@h:1".into(),
            ..Snapshot::default()
        };
        let text = render(&s);
        assert!(text.contains("redis_sync_applied_offset 7\n"));
        assert!(text.contains("# TYPE redis_sync_lag_bytes gauge"));
        assert!(!text.contains("***"));
    }

    /// The Grafana dashboard shipped in `examples/grafana/`.
    const DASHBOARD: &str = include_str!("../../../examples/grafana/redis-sync.json");

    /// Every metric `render` can serve (the heartbeat one too), with its `# TYPE`.
    fn served() -> std::collections::BTreeMap<String, String> {
        let s = Snapshot {
            heartbeat_lag_secs: Some(0.5),
            ..Snapshot::default()
        };
        render(&s)
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_once(' '))
            .map(|(name, kind)| (name.to_string(), kind.to_string()))
            .collect()
    }

    /// Every PromQL expression of the dashboard: the panels' `expr` and the variables' queries.
    fn queries(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                        ("query" | "definition", serde_json::Value::String(q))
                            if q.contains("label_values(") =>
                        {
                            out.push(q.clone())
                        }
                        _ => queries(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| queries(v, out)),
            _ => {}
        }
    }

    /// PromQL functions and aggregations (Prometheus 2.x and 3.x), plus Grafana's
    /// `label_values` of template variables.
    const FUNCTIONS: &[&str] = &[
        "abs",
        "absent",
        "absent_over_time",
        "avg",
        "avg_over_time",
        "bottomk",
        "ceil",
        "changes",
        "clamp",
        "clamp_max",
        "clamp_min",
        "count",
        "count_over_time",
        "count_values",
        "day_of_month",
        "day_of_week",
        "day_of_year",
        "days_in_month",
        "delta",
        "deriv",
        "exp",
        "floor",
        "group",
        "histogram_quantile",
        "hour",
        "idelta",
        "increase",
        "irate",
        "label_join",
        "label_replace",
        "label_values",
        "last_over_time",
        "ln",
        "log10",
        "log2",
        "max",
        "max_over_time",
        "min",
        "min_over_time",
        "minute",
        "month",
        "predict_linear",
        "present_over_time",
        "quantile",
        "quantile_over_time",
        "rate",
        "resets",
        "round",
        "scalar",
        "sgn",
        "sort",
        "sort_desc",
        "sqrt",
        "stddev",
        "stddev_over_time",
        "stdvar",
        "sum",
        "sum_over_time",
        "time",
        "timestamp",
        "topk",
        "vector",
        "year",
    ];

    /// Each metric name an expression selects, with the function it sits directly in (if
    /// any). Skips label matchers `{…}`, ranges `[…]`, strings, numbers, `$variables` and the
    /// label lists of `by`/`without`/`on`/`ignoring`/`group_left`/`group_right`. An unknown
    /// function or unbalanced brackets are errors.
    fn selected_metrics(expr: &str) -> Result<Vec<(String, Option<String>)>, String> {
        const LABEL_LISTS: &[&str] = &[
            "by",
            "without",
            "on",
            "ignoring",
            "group_left",
            "group_right",
        ];
        const KEYWORDS: &[&str] = &["bool", "and", "or", "unless", "offset", "atan2"];
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
        ];
        let b = expr.as_bytes();
        let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
        let skip_to = |mut i: usize, close: u8| -> Result<usize, String> {
            while i < b.len() && b[i] != close {
                i += 1;
            }
            (i < b.len())
                .then_some(i + 1)
                .ok_or_else(|| format!("unclosed {:?} in {expr}", close as char))
        };
        let next_non_space = |mut i: usize| {
            while i < b.len() && b[i] == b' ' {
                i += 1;
            }
            i
        };
        let mut out = Vec::new();
        // The enclosing calls and parentheses: Some(function) or None (grouping).
        let mut stack: Vec<Option<String>> = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            match c {
                b'"' | b'\'' | b'`' => i = skip_to(i + 1, c)?,
                b'{' => i = skip_to(i + 1, b'}')?,
                b'[' => i = skip_to(i + 1, b']')?,
                b'(' => {
                    stack.push(None);
                    i += 1;
                }
                // label_values(metric, label): what follows the metric is a label name.
                b',' if stack.last() == Some(&Some("label_values".to_string())) => {
                    i = skip_to(i, b')')? - 1;
                }
                b')' => {
                    stack
                        .pop()
                        .ok_or_else(|| format!("unbalanced ')' in {expr}"))?;
                    i += 1;
                }
                b'$' => {
                    i += 1;
                    if b.get(i) == Some(&b'{') {
                        i = skip_to(i, b'}')?;
                    }
                    while i < b.len() && ident(b[i]) {
                        i += 1;
                    }
                }
                b'0'..=b'9' | b'.' => {
                    while i < b.len() && (ident(b[i]) || b[i] == b'.') {
                        i += 1;
                    }
                }
                c if ident(c) => {
                    let start = i;
                    while i < b.len() && ident(b[i]) {
                        i += 1;
                    }
                    let word = &expr[start..i];
                    let mut after = next_non_space(i);
                    // `sum by (label) (expr)`: the grouping may stand between name and call.
                    if AGGREGATIONS.contains(&word) {
                        for kw in ["by", "without"] {
                            let end = after + kw.len();
                            if b[after..].starts_with(kw.as_bytes())
                                && b.get(end).is_none_or(|c| !ident(*c))
                                && b.get(next_non_space(end)) == Some(&b'(')
                            {
                                after = next_non_space(skip_to(next_non_space(end) + 1, b')')?);
                            }
                        }
                    }
                    let call = b.get(after) == Some(&b'(');
                    if LABEL_LISTS.contains(&word) {
                        if call {
                            i = skip_to(after + 1, b')')?;
                        }
                    } else if call && !KEYWORDS.contains(&word) {
                        if !FUNCTIONS.contains(&word) {
                            return Err(format!("unknown function {word}( in {expr}"));
                        }
                        stack.push(Some(word.to_string()));
                        i = after + 1;
                    } else if !KEYWORDS.contains(&word) {
                        out.push((word.to_string(), stack.last().cloned().flatten()));
                    }
                }
                _ => i += 1,
            }
        }
        if !stack.is_empty() {
            return Err(format!("unclosed '(' in {expr}"));
        }
        Ok(out)
    }

    #[test]
    fn the_expression_scanner_finds_metrics_and_their_function() {
        let found = selected_metrics(
            r#"sum by (instance) (rate(redis_sync_a_total{job=~"$job"}[$__rate_interval])) / (redis_sync_b > 0)"#,
        );
        assert_eq!(
            found,
            Ok(vec![
                ("redis_sync_a_total".to_string(), Some("rate".to_string())),
                ("redis_sync_b".to_string(), None),
            ])
        );
        assert_eq!(
            selected_metrics(r#"label_values(redis_sync_s{job=~"$job"}, instance)"#),
            Ok(vec![(
                "redis_sync_s".to_string(),
                Some("label_values".to_string())
            )])
        );
        assert!(selected_metrics("rat(redis_sync_a_total[1m])").is_err());
        assert!(selected_metrics("rate(redis_sync_a_total[1m]").is_err());
        assert!(selected_metrics(r#"redis_sync_a{job="x"#).is_err());
    }

    /// The dashboard cannot drift from this file: each metric it queries is served, counters
    /// go through `rate`/`irate`/`increase` and gauges never do, and each served metric is on
    /// some panel.
    #[test]
    fn the_grafana_dashboard_queries_exactly_the_served_metrics() {
        let served = served();
        let dashboard: serde_json::Value =
            serde_json::from_str(DASHBOARD).expect("examples/grafana/redis-sync.json is JSON");
        let mut exprs = Vec::new();
        queries(&dashboard, &mut exprs);
        assert!(exprs.len() > 20, "found only {} queries", exprs.len());
        let mut used = std::collections::BTreeSet::new();
        for expr in &exprs {
            let metrics = selected_metrics(expr).unwrap_or_else(|e| panic!("{e}"));
            assert!(!metrics.is_empty(), "no metric in {expr}");
            for (name, function) in metrics {
                let kind = served.get(&name).unwrap_or_else(|| {
                    panic!("the dashboard queries {name}, which --metrics does not serve: {expr}")
                });
                match function.as_deref() {
                    Some("rate" | "irate" | "increase") => {
                        assert_eq!(kind, "counter", "{name} is a {kind}: {expr}")
                    }
                    Some("deriv" | "delta" | "idelta") => {
                        assert_eq!(kind, "gauge", "{name} is a {kind}: {expr}")
                    }
                    _ => {}
                }
                used.insert(name);
            }
        }
        let unused: Vec<_> = served.keys().filter(|n| !used.contains(*n)).collect();
        assert!(unused.is_empty(), "metrics on no panel: {unused:?}");
    }

    /// Imported dashboards ask for their Prometheus data source through `__inputs`; every
    /// panel and query uses it.
    #[test]
    fn the_grafana_dashboard_asks_for_its_data_source() {
        let dashboard: serde_json::Value =
            serde_json::from_str(DASHBOARD).expect("examples/grafana/redis-sync.json is JSON");
        assert_eq!(dashboard["__inputs"][0]["name"], "DS_PROMETHEUS");
        assert_eq!(dashboard["__inputs"][0]["pluginId"], "prometheus");
        let mut sources = Vec::new();
        fn walk<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a serde_json::Value>) {
            match v {
                serde_json::Value::Object(map) => {
                    if let Some(ds) = map.get("datasource") {
                        out.push(ds);
                    }
                    map.values().for_each(|v| walk(v, out));
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
                _ => {}
            }
        }
        walk(&dashboard["panels"], &mut sources);
        assert!(!sources.is_empty());
        for ds in sources {
            assert_eq!(ds["uid"], "${DS_PROMETHEUS}", "{ds}");
        }
    }
}
