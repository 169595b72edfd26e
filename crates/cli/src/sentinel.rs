//! Redis Sentinel addresses: `redis+sentinel://[user:pass@]host:port[,host:port…]/master-name[/db]`
//! for the source or the target. The sentinels are asked which server is the master of
//! `master-name` when a command starts, and again each time a link to it is lost, so a
//! failover is followed on either side (the replica's and the sink's `locate`).
//!
//! Which sentinel to believe: during a failover the sentinels do not switch at the same
//! moment, so every sentinel is asked (`SENTINEL MASTER name`) and the answer with the highest
//! `config-epoch` wins — the epoch a failover bumps — rather than the first that answers.
//!
//! The credentials of the URL are the master's (and its replicas'). Sentinels usually have no
//! password; when one has (`requirepass` in sentinel.conf), it is taken to be the same.
//! `rediss+sentinel://` is refused: the sentinels and the CLI's own connections speak plain
//! TCP.

use std::fmt;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::future::join_all;
use redis_sync_resp::Frame;

use crate::url::{Endpoint, percent_decode, redact_url};

/// The sentinels' port when the URL gives none.
pub const DEFAULT_PORT: u16 = 26379;

/// How long one sentinel may take to connect and answer.
const TIMEOUT: Duration = Duration::from_secs(3);

/// The sentinel part of an [`Endpoint`]: the sentinels to ask and the master's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sentinels {
    /// `(host, port)` of each sentinel, as given.
    pub nodes: Vec<(String, u16)>,
    /// The name the sentinels monitor the master under.
    pub master: String,
}

impl Sentinels {
    fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|(h, p)| host_port(h, *p)).collect()
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Parses a `redis+sentinel://` URL; `Ok(None)` for any other scheme. The endpoint's
/// `host`/`port` are the first sentinel's until [`resolve`] points them at the master.
pub fn parse(url: &str) -> anyhow::Result<Option<Endpoint>> {
    if url.starts_with("rediss+sentinel://") {
        bail!(
            "`{}`: TLS through Sentinel (rediss+sentinel://) is not supported: the sentinels \
             and redis-sync's own connections speak plain TCP; use redis+sentinel://, e.g. \
             through a local TLS tunnel",
            redact_url(url)
        );
    }
    let Some(rest) = url.strip_prefix("redis+sentinel://") else {
        return Ok(None);
    };
    // `user:pass@` ends at the last `@` before the path (a password may hold `/` or `@` only
    // percent-encoded, as in any URL).
    let (auth, after) = match rest.rsplit_once('@') {
        Some((a, h)) => (Some(a), h),
        None => (None, rest),
    };
    let usage = || {
        format!(
            "`{}`: expected redis+sentinel://[user:pass@]host:port[,host:port…]/master-name",
            redact_url(url)
        )
    };
    let (hosts, path) = after.split_once('/').with_context(usage)?;
    let (master, db) = match path.split_once('/') {
        Some((m, "")) => (m, None),
        Some((m, d)) => (
            m,
            Some(
                d.parse::<u32>()
                    .with_context(|| format!("the db in `{}` is not a number", redact_url(url)))?,
            ),
        ),
        None => (path, None),
    };
    if master.is_empty() {
        bail!("{}: no master name", usage());
    }
    let mut nodes = Vec::new();
    for h in hosts.split(',').filter(|h| !h.is_empty()) {
        // `[::1]:26379`, `host:26379` or `host`.
        let (host, port) = match h.rsplit_once(':') {
            Some((host, p)) if !host.is_empty() && (!host.contains(':') || host.ends_with(']')) => {
                let port = p.parse::<u16>().with_context(|| {
                    format!(
                        "the port of sentinel `{h}` in `{}` is not a number",
                        redact_url(url)
                    )
                })?;
                (host, port)
            }
            _ => (h, DEFAULT_PORT),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            bail!("{}: a sentinel without a host", usage());
        }
        nodes.push((host.to_string(), port));
    }
    let Some((first_host, first_port)) = nodes.first().cloned() else {
        bail!("{}: no sentinel", usage());
    };
    // The credentials as `redis://` reads them.
    let (user, password) = match auth.map(|a| a.split_once(':').unwrap_or(("", a))) {
        None => (None, None),
        Some((u, p)) => (
            Some(percent_decode(u)).filter(|u| !u.is_empty()),
            Some(percent_decode(p)).filter(|p| !p.is_empty()),
        ),
    };
    Ok(Some(Endpoint {
        host: first_host,
        port: first_port,
        user,
        password,
        db,
        tls: None,
        sentinel: Some(Sentinels {
            nodes,
            master: percent_decode(master),
        }),
    }))
}

/// `Display` of a sentinel endpoint: the URL with the password redacted.
pub fn fmt_url(ep: &Endpoint, s: &Sentinels, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "redis+sentinel://")?;
    match (&ep.user, &ep.password) {
        (Some(u), Some(_)) => write!(f, "{u}:***@")?,
        (Some(u), None) => write!(f, "{u}@")?,
        (None, Some(_)) => write!(f, ":***@")?,
        (None, None) => {}
    }
    write!(f, "{}/{}", s.addrs().join(","), s.master)?;
    if let Some(db) = ep.db {
        write!(f, "/{db}")?;
    }
    Ok(())
}

/// What names a source in the target's checkpoint key and in the default state file's name:
/// its address, or for a sentinel source the master's name and the sentinels (sorted), which
/// a failover does not change — so `cutover` and `verify` find the checkpoint of a sync that
/// followed a failover, and a restart after one needs no look-up by replication ID.
pub fn checkpoint_name(ep: &Endpoint) -> String {
    match &ep.sentinel {
        None => ep.addr(),
        Some(s) => {
            let mut addrs = s.addrs();
            addrs.sort();
            format!("sentinel:{}@{}", s.master, addrs.join(","))
        }
    }
}

/// One sentinel's view of the master: `(config-epoch, host:port)`.
async fn ask(ep: &Endpoint, s: &Sentinels, addr: &str) -> anyhow::Result<(u64, String)> {
    let mut c = redis_sync_resp::Client::connect(addr, TIMEOUT).await?;
    c.set_timeout(TIMEOUT);
    let mut reply = c.call(&["SENTINEL", "MASTER", s.master.as_str()]).await?;
    if let Frame::Error(e) = &reply
        && e.starts_with(b"NOAUTH")
        && let Some(pw) = &ep.password
    {
        // A sentinel with `requirepass`: the URL's password (the sentinel has no ACL user).
        if let Some(e) = c.auth(None, pw).await? {
            bail!(
                "{addr} refused the password: {}",
                String::from_utf8_lossy(&e)
            );
        }
        reply = c.call(&["SENTINEL", "MASTER", s.master.as_str()]).await?;
    }
    let pairs = match &reply {
        Frame::Array(_) | Frame::Map(_) => crate::client::pairs(&reply),
        Frame::Error(e) => bail!(
            "sentinel {addr}: SENTINEL MASTER {}: {}",
            s.master,
            String::from_utf8_lossy(e)
        ),
        _ => bail!("sentinel {addr}: an unexpected answer to SENTINEL MASTER"),
    };
    let get = |k: &str| pairs.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
    let host = get("ip").context("SENTINEL MASTER gave no ip")?;
    let port = get("port")
        .and_then(|p| p.parse::<u16>().ok())
        .context("SENTINEL MASTER gave no valid port")?;
    let epoch = get("config-epoch")
        .and_then(|e| e.parse().ok())
        .unwrap_or(0);
    Ok((epoch, host_port(host, port)))
}

/// The address of the master of a sentinel endpoint now (its `addr()` for any other): every
/// sentinel is asked at once, and the answer of the highest `config-epoch` wins.
pub async fn master_addr(ep: &Endpoint) -> anyhow::Result<String> {
    let Some(s) = &ep.sentinel else {
        return Ok(ep.addr());
    };
    let addrs = s.addrs();
    let answers = join_all(addrs.iter().map(|a| ask(ep, s, a))).await;
    let mut best: Option<(u64, String)> = None;
    let mut errors = Vec::new();
    for (addr, a) in addrs.iter().zip(answers) {
        match a {
            Ok((epoch, master)) => {
                if best.as_ref().is_none_or(|(e, _)| epoch > *e) {
                    best = Some((epoch, master));
                }
            }
            Err(e) => errors.push(format!("{addr}: {e:#}")),
        }
    }
    match best {
        Some((_, master)) => Ok(master),
        None => bail!(
            "no sentinel named the master of `{}` ({})",
            s.master,
            errors.join("; ")
        ),
    }
}

/// Points a sentinel endpoint's `host`/`port` at its master now (logged); any other endpoint
/// is returned as is. Commands call it once at start, so `addr()` is the master.
pub async fn resolve(mut ep: Endpoint) -> anyhow::Result<Endpoint> {
    if ep.sentinel.is_none() {
        return Ok(ep);
    }
    let addr = master_addr(&ep).await.with_context(|| format!("{ep}"))?;
    let (host, port) = addr
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        .with_context(|| format!("a sentinel gave a bad address `{addr}`"))?;
    tracing::info!("{ep}: the master is {addr}");
    ep.host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    ep.port = port;
    Ok(ep)
}

/// [`resolve`] for a command's two endpoints.
pub async fn resolve_pair(
    source: Endpoint,
    target: Endpoint,
) -> anyhow::Result<(Endpoint, Endpoint)> {
    Ok((
        resolve(source).await.context("--source")?,
        resolve(target).await.context("--target")?,
    ))
}

/// A `locate` for the replica or the sink, when `ep` is a sentinel endpoint: asks the
/// sentinels where the master is (`None`, keeping the last address, when none answers).
pub fn locator(
    ep: &Endpoint,
) -> Option<
    impl Fn() -> std::pin::Pin<Box<dyn Future<Output = Option<String>> + Send>> + Send + Sync + 'static,
> {
    ep.sentinel.as_ref()?;
    let ep = ep.clone();
    Some(move || {
        let ep = ep.clone();
        Box::pin(async move {
            match master_addr(&ep).await {
                Ok(a) => Some(a),
                Err(e) => {
                    tracing::warn!("{ep}: {e:#}");
                    None
                }
            }
        }) as std::pin::Pin<Box<dyn Future<Output = Option<String>> + Send>>
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sentinel_urls() {
        let e = parse("redis+sentinel://app:s3cret@10.0.0.1:26380,[::1],h3/mymaster/2")
            .expect("parses")
            .expect("a sentinel URL");
        let s = e.sentinel.as_ref().expect("sentinels");
        assert_eq!(s.master, "mymaster");
        assert_eq!(
            s.nodes,
            vec![
                ("10.0.0.1".to_string(), 26380),
                ("::1".to_string(), DEFAULT_PORT),
                ("h3".to_string(), DEFAULT_PORT)
            ]
        );
        assert_eq!(e.user.as_deref(), Some("app"));
        assert_eq!(e.password.as_deref(), Some("s3cret"));
        assert_eq!(e.db, Some(2));
        let shown = e.to_string();
        assert_eq!(
            shown,
            "redis+sentinel://app:***@10.0.0.1:26380,[::1]:26379,h3:26379/mymaster/2"
        );
        assert_eq!(
            checkpoint_name(&e),
            "sentinel:mymaster@10.0.0.1:26380,[::1]:26379,h3:26379"
        );
        // The order the sentinels are given in does not change the checkpoint's name.
        let f = parse("redis+sentinel://h3,[::1]:26379,10.0.0.1:26380/mymaster")
            .expect("parses")
            .expect("a sentinel URL");
        assert_eq!(checkpoint_name(&e), checkpoint_name(&f));
        assert!(f.password.is_none());

        assert!(parse("redis://h:1").expect("not sentinel").is_none());
        for bad in [
            "redis+sentinel://h:1",
            "redis+sentinel://h:1/",
            "redis+sentinel:///m",
            "redis+sentinel://h:x/m",
            "redis+sentinel://h:1/m/x",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let err = parse("rediss+sentinel://:topsecret@h:1/m")
            .expect_err("TLS refused")
            .to_string();
        assert!(
            err.contains("not supported") && !err.contains("topsecret"),
            "{err}"
        );
        let err = parse("redis+sentinel://u:topsecret@h:notaport/m")
            .expect_err("bad port")
            .to_string();
        assert!(!err.contains("topsecret"), "{err}");
    }
}
