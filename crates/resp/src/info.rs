//! The text of an `INFO` or `CLUSTER INFO` reply: `field:value` lines, grouped under
//! `# Section` headers, with `\r\n` line ends.
//!
//! Every part of the project that asks a server about itself (the replica's handshake, the
//! sink's target detection, the CLI's prechecks and verify) reads it through these two
//! functions.

/// The `(field, value)` pairs of an `INFO` text in order, values trimmed. Section headers,
/// blank lines and lines without `:` are skipped.
///
/// ```
/// let text = "# Server\r\nredis_version:7.2.4\r\n\r\n# Keyspace\r\ndb0:keys=3,expires=0\r\n";
/// let fields: Vec<_> = redis_sync_resp::info_fields(text).collect();
/// assert_eq!(fields, [("redis_version", "7.2.4"), ("db0", "keys=3,expires=0")]);
/// ```
pub fn info_fields(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k, v.trim()))
}

/// The value of `field` in an `INFO` text (the first line `field:…`), trimmed.
///
/// ```
/// let text = "# Replication\r\nrole:master\r\nmaster_repl_offset:1234\r\n";
/// assert_eq!(redis_sync_resp::info_field(text, "master_repl_offset"), Some("1234"));
/// assert_eq!(redis_sync_resp::info_field(text, "master_repl"), None);
/// ```
pub fn info_field<'a>(text: &'a str, field: &str) -> Option<&'a str> {
    info_fields(text).find_map(|(k, v)| (k == field).then_some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_may_hold_colons_and_lines_may_lack_them() {
        let text = "# Cluster\r\ncluster_enabled:1\r\nnonsense\r\nmaster0:ip=127.0.0.1,port=7000\r\nx:a:b\r\n";
        assert_eq!(info_field(text, "x"), Some("a:b"));
        assert_eq!(info_field(text, "master0"), Some("ip=127.0.0.1,port=7000"));
        assert_eq!(info_field(text, "nonsense"), None);
        assert_eq!(info_fields(text).count(), 3);
    }
}
