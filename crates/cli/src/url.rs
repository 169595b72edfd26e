//! Server addresses as users write them: `redis://[user:pass@]host:port[/db]` (or `rediss://`
//! for TLS, or a bare `host:port`), with the password also from an environment variable or a
//! file, and the TLS settings from the flags. The password is never shown: [`Endpoint`]'s
//! `Display` and `Debug` redact it.

use std::fmt;
use std::path::Path;

use anyhow::{Context, bail};
use redis_sync_resp::TlsConfig;

/// A parsed server address with its credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// ACL user (`None`: the default user).
    pub user: Option<String>,
    /// Password, if any.
    pub password: Option<String>,
    /// The db in the URL path (`/3`), if any.
    pub db: Option<u32>,
    /// `rediss://`: connect over TLS with these settings (the CA file, the insecure mode and
    /// the server name come from the flags; the URL only says TLS). Every connection the CLI
    /// makes to this server (prechecks, verify, the checkpoint, the sink, the replica) uses
    /// them, so they live with the address.
    pub tls: Option<TlsConfig>,
    /// `redis+sentinel://`: the sentinels that name the master (see [`crate::sentinel`]);
    /// `host`/`port` are then the master found when the command started.
    pub sentinel: Option<crate::sentinel::Sentinels>,
}

impl Endpoint {
    /// Parses `redis://[user:pass@]host:port[/db]`, `rediss://…` or `host:port`.
    pub fn parse(url: &str) -> anyhow::Result<Endpoint> {
        if let Some(ep) = crate::sentinel::parse(url)? {
            return Ok(ep);
        }
        let (tls, rest) = if let Some(r) = url.strip_prefix("rediss://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("redis://") {
            (false, r)
        } else if url.contains("://") {
            bail!(
                "unsupported address `{}`: use redis://host:port, rediss://host:port or \
                 redis+sentinel://host:port[,host:port…]/master-name",
                redact_url(url)
            );
        } else {
            (false, url)
        };
        let (auth, hostpart) = match rest.rsplit_once('@') {
            Some((a, h)) => (Some(a), h),
            None => (None, rest),
        };
        let (hostport, db) = match hostpart.split_once('/') {
            Some((hp, "")) => (hp, None),
            Some((hp, d)) => {
                let db = d
                    .parse::<u32>()
                    .with_context(|| format!("the db in `{}` is not a number", redact_url(url)))?;
                (hp, Some(db))
            }
            None => (hostpart, None),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => {
                let port = p.parse::<u16>().with_context(|| {
                    format!("the port in `{}` is not a number", redact_url(url))
                })?;
                (h, port)
            }
            None => (hostport, 6379),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            bail!("no host in `{}`", redact_url(url));
        }
        let (user, password) = match auth {
            None => (None, None),
            Some(a) => match a.split_once(':') {
                Some(("", p)) => (None, Some(percent_decode(p))),
                Some((u, p)) => (Some(percent_decode(u)), Some(percent_decode(p))),
                None => (None, Some(percent_decode(a))),
            },
        };
        Ok(Endpoint {
            host: host.to_string(),
            port,
            user,
            password: password.filter(|p| !p.is_empty()),
            db,
            tls: tls.then(TlsConfig::default),
            sentinel: None,
        })
    }

    /// `host:port`, for connecting.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Fills in the password from `env` (an environment variable name) or `file` when the URL
    /// has none. The file's content is trimmed of its trailing newline.
    pub fn with_password_from(mut self, env: &str, file: Option<&Path>) -> anyhow::Result<Self> {
        if self.password.is_some() {
            return Ok(self);
        }
        if let Some(file) = file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the password file {}", file.display()))?;
            let pw = text.trim_end_matches(['\r', '\n']).to_string();
            if !pw.is_empty() {
                self.password = Some(pw);
                return Ok(self);
            }
        }
        if let Ok(pw) = std::env::var(env)
            && !pw.is_empty()
        {
            self.password = Some(pw);
        }
        Ok(self)
    }
}

impl fmt::Display for Endpoint {
    /// The URL with the password replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = &self.sentinel {
            return crate::sentinel::fmt_url(self, s, f);
        }
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        write!(f, "{scheme}://")?;
        match (&self.user, &self.password) {
            (Some(u), Some(_)) => write!(f, "{u}:***@")?,
            (Some(u), None) => write!(f, "{u}@")?,
            (None, Some(_)) => write!(f, ":***@")?,
            (None, None) => {}
        }
        write!(f, "{}", self.addr())?;
        if let Some(db) = self.db {
            write!(f, "/{db}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Endpoint({self})")
    }
}

/// A URL as the user typed it, with any password replaced by `***` (for error messages about
/// URLs that did not parse).
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), url),
    };
    match rest.rsplit_once('@') {
        Some((auth, host)) => match auth.split_once(':') {
            Some((u, _)) => format!("{scheme}{u}:***@{host}"),
            None => format!("{scheme}***@{host}"),
        },
        None => url.to_string(),
    }
}

pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(hex) = b.get(i + 1..i + 3)
            && let Some(v) = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_redacts() {
        let e = Endpoint::parse("redis://app:s3cret@127.0.0.1:6380/3").expect("parses");
        assert_eq!(e.addr(), "127.0.0.1:6380");
        assert_eq!(e.user.as_deref(), Some("app"));
        assert_eq!(e.password.as_deref(), Some("s3cret"));
        assert_eq!(e.db, Some(3));
        assert_eq!(e.to_string(), "redis://app:***@127.0.0.1:6380/3");
        assert!(!format!("{e:?}").contains("s3cret"));

        let e = Endpoint::parse("rediss://:pw%40x@h").expect("parses");
        assert!(e.tls.is_some() && e.user.is_none());
        assert_eq!(e.password.as_deref(), Some("pw@x"));
        assert_eq!(e.port, 6379);

        let e = Endpoint::parse("localhost:7000").expect("parses");
        assert_eq!(e.addr(), "localhost:7000");
        assert!(Endpoint::parse("http://x:1").is_err());
        let err = Endpoint::parse("redis://u:topsecret@h:notaport")
            .expect_err("bad port")
            .to_string();
        assert!(!err.contains("topsecret"), "{err}");
    }
}
