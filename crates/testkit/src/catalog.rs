//! Which server versions are installed, and how to find one.

use std::path::{Path, PathBuf};

use crate::{SERVERS_HINT as INSTALL_HINT, in_ci};

/// Redis or Valkey: they differ in RDB magic, type numbers and some replication details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Flavor {
    /// Redis (including Redis Stack).
    Redis,
    /// Valkey.
    Valkey,
}

/// One installed server binary, e.g. `redis-7.4.1` or `valkey-9.0.0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerVersion {
    name: String,
    flavor: Flavor,
    version: (u32, u32, u32),
    bin: PathBuf,
    modules: Option<PathBuf>,
}

impl ServerVersion {
    /// The install name, e.g. `redis-7.0.15`.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Redis or Valkey.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }
    /// `(major, minor, patch)`.
    pub fn version(&self) -> (u32, u32, u32) {
        self.version
    }
    /// True when this is at least `major.minor`.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.version.0, self.version.1) >= (major, minor)
    }
    /// Path of the server binary.
    pub fn bin(&self) -> &Path {
        &self.bin
    }
    /// The Redis Stack modules folder (`rejson.so`, `redisbloom.so`, …), if this version has one.
    pub fn modules_dir(&self) -> Option<&Path> {
        self.modules.as_deref()
    }
    /// Path of a module's `.so` (e.g. `"rejson"`), if this version ships it.
    pub fn module(&self, name: &str) -> Option<PathBuf> {
        let p = self.modules.as_ref()?.join(format!("{name}.so"));
        p.exists().then_some(p)
    }
    /// True when `DEBUG` must be enabled with `--enable-debug-command yes` (Redis 7.0+, Valkey).
    pub fn needs_debug_flag(&self) -> bool {
        self.flavor == Flavor::Valkey || self.at_least(7, 0)
    }
    /// The RDB format version this server writes (`80` stands for Valkey's `VALKEY080`).
    pub fn rdb_version(&self) -> u32 {
        match (self.flavor, self.version.0, self.version.1) {
            (Flavor::Valkey, 9.., _) => 80,
            (Flavor::Valkey, _, _) => 11,
            (_, 8, m) if m >= 2 => 13,
            (_, 8.., _) => 12,
            (_, 7, m) if m >= 4 => 12,
            (_, 7, 2..) => 11,
            (_, 7, _) => 10,
            _ => 9,
        }
    }
}

impl std::fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// The folder the installers write to: `$REDIS_SERVERS_DIR`, else `~/.cache/redis-sync/servers`.
fn servers_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("REDIS_SERVERS_DIR") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/redis-sync/servers")
}

fn parse_name(name: &str) -> Option<(Flavor, (u32, u32, u32))> {
    let (flavor, rest) = if let Some(r) = name.strip_prefix("redis-") {
        (Flavor::Redis, r)
    } else {
        (Flavor::Valkey, name.strip_prefix("valkey-")?)
    };
    let mut it = rest.split(['.', '-']).map(|p| p.parse::<u32>());
    let major = it.next()?.ok()?;
    let minor = it.next()?.ok()?;
    let patch = it.next().and_then(Result::ok).unwrap_or(0);
    Some((flavor, (major, minor, patch)))
}

fn scan(dir: &Path) -> Vec<ServerVersion> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir.join("bin")) else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((flavor, version)) = parse_name(&name) else {
            continue;
        };
        let exe = match flavor {
            Flavor::Redis => "redis-server",
            Flavor::Valkey => "valkey-server",
        };
        let bin = e.path().join(exe);
        if !bin.exists() {
            continue;
        }
        let modules = Some(e.path().join("modules")).filter(|m| m.is_dir());
        out.push(ServerVersion {
            name,
            flavor,
            version,
            bin,
            modules,
        });
    }
    out.sort_by_key(|v| (v.flavor, v.version));
    out
}

fn redis_on_path() -> Option<ServerVersion> {
    let out = std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text.split_whitespace().find_map(|w| w.strip_prefix("v="))?;
    let (flavor, version) = parse_name(&format!("redis-{v}"))?;
    Some(ServerVersion {
        name: format!("redis-{v}"),
        flavor,
        version,
        bin: PathBuf::from("redis-server"),
        modules: None,
    })
}

/// Every installed server version, oldest Redis first, then Valkey.
///
/// Under `CI=true` an empty list panics with the install command; outside CI it prints a note
/// and returns whatever a `redis-server` on `PATH` offers (possibly nothing).
pub fn versions() -> Vec<ServerVersion> {
    let found = scan(&servers_dir());
    if !found.is_empty() {
        return found;
    }
    if in_ci() {
        panic!(
            "no test servers found in {}: {INSTALL_HINT}",
            servers_dir().join("bin").display()
        );
    }
    let fallback: Vec<_> = redis_on_path().into_iter().collect();
    eprintln!(
        "note: no servers in {}, using {} from PATH; {INSTALL_HINT}",
        servers_dir().display(),
        fallback.len()
    );
    fallback
}

/// The installed versions for which `pred` holds. Under `CI=true` an empty result panics
/// (naming `what` was needed); outside CI it prints a skip note and returns an empty list.
pub fn versions_where(what: &str, pred: impl Fn(&ServerVersion) -> bool) -> Vec<ServerVersion> {
    let all = versions();
    let found: Vec<_> = all.into_iter().filter(|v| pred(v)).collect();
    if found.is_empty() {
        if in_ci() {
            panic!("no installed server is {what}: {INSTALL_HINT}");
        }
        eprintln!("skipped: no installed server is {what}; {INSTALL_HINT}");
    }
    found
}

/// The installed version called `name` (e.g. `"redis-7.0.15"`), if any.
pub fn find(name: &str) -> Option<ServerVersion> {
    versions().into_iter().find(|v| v.name == name)
}

/// The newest installed version of `flavor`; panics under CI (skip outside) when there is none.
pub fn require(flavor: Flavor) -> Option<ServerVersion> {
    versions_where(&format!("{flavor:?}"), |v| v.flavor == flavor).pop()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        assert_eq!(
            parse_name("redis-7.0.15"),
            Some((Flavor::Redis, (7, 0, 15)))
        );
        assert_eq!(
            parse_name("valkey-9.1.2"),
            Some((Flavor::Valkey, (9, 1, 2)))
        );
        assert_eq!(parse_name("redis-8.6"), Some((Flavor::Redis, (8, 6, 0))));
        assert_eq!(parse_name("keydb-6.0"), None);
    }
}
