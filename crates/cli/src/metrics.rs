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

/// Binds `addr` and serves the metrics until the task is aborted. Returns the bound address
/// (port 0 picks a free one).
pub async fn serve(addr: SocketAddr, shared: Shared) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot serve metrics on {addr}"))?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                continue;
            };
            let shared = shared.clone();
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
                    let s = shared.lock().unwrap_or_else(|e| e.into_inner());
                    render(&s)
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
}
