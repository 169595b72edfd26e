//! Which commands the target server understands, as a Redis-compatible version number.

use crate::event::{Flavor, Header};

/// The oldest server the generated commands must run on, in Redis version terms.
///
/// The converter uses it to choose between equivalent commands: `SET … PXAT` (6.2+) or `SET`
/// then `PEXPIREAT`; `HSET` with many pairs (4.0+) or `HMSET`; `RESTORE … ABSTTL`,
/// `IDLETIME`, `FREQ` (5.0+) or a relative TTL; `XGROUP CREATECONSUMER` (6.2+) or an
/// `XREADGROUP` that creates the consumer; `XSETID … ENTRIESADDED … MAXDELETEDID` and
/// `XGROUP CREATE … ENTRIESREAD` (7.0+) or without them.
///
/// Valkey versions map onto the Redis line they forked from: [`TargetVersion::valkey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TargetVersion {
    major: u16,
    minor: u16,
}

impl Default for TargetVersion {
    /// The newest features ([`TargetVersion::LATEST`]).
    fn default() -> Self {
        Self::LATEST
    }
}

impl TargetVersion {
    /// A target with every feature this converter uses.
    pub const LATEST: TargetVersion = TargetVersion {
        major: 99,
        minor: 0,
    };

    /// A Redis `major.minor` target.
    pub const fn redis(major: u16, minor: u16) -> Self {
        TargetVersion { major, minor }
    }

    /// A Valkey `major.minor` target: Valkey 7.2 and 8.x speak Redis 7.2's commands; Valkey 9
    /// adds hash field TTLs (`HPEXPIREAT`), so it maps to Redis 7.4.
    pub const fn valkey(major: u16, _minor: u16) -> Self {
        if major >= 9 {
            Self::redis(7, 4)
        } else {
            Self::redis(7, 2)
        }
    }

    /// The oldest server that writes this RDB header's version: a safe target for replaying a
    /// file into a server of the same version as its writer.
    pub fn for_rdb(header: &Header) -> Self {
        if header.flavor == Flavor::Valkey {
            return Self::valkey(9, 0);
        }
        match header.version {
            0..=6 => Self::redis(2, 6),
            7 => Self::redis(3, 2),
            8 => Self::redis(4, 0),
            9 => Self::redis(5, 0),
            10 => Self::redis(7, 0),
            11 => Self::redis(7, 2),
            12 => Self::redis(7, 4),
            _ => Self::redis(8, 2),
        }
    }

    /// `(major, minor)`.
    pub fn version(&self) -> (u16, u16) {
        (self.major, self.minor)
    }

    /// True when the target is at least `major.minor`.
    pub fn at_least(&self, major: u16, minor: u16) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl std::fmt::Display for TargetVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if *self == Self::LATEST {
            f.write_str("latest")
        } else {
            write!(f, "{}.{}", self.major, self.minor)
        }
    }
}

impl std::str::FromStr for TargetVersion {
    type Err = String;

    /// Parses `7.2`, `7.2.4`, `redis-7.2`, `valkey-8.1` or `latest`.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("latest") {
            return Ok(Self::LATEST);
        }
        let (valkey, rest) = if let Some(r) = s.strip_prefix("valkey-") {
            (true, r)
        } else {
            (false, s.strip_prefix("redis-").unwrap_or(s))
        };
        let mut parts = rest.split('.');
        let bad =
            || format!("bad target version {s:?}: expected e.g. 7.2, redis-6.2 or valkey-8.1");
        let major = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let minor = parts
            .next()
            .map_or(Some(0), |p| p.parse().ok())
            .ok_or_else(bad)?;
        Ok(if valkey {
            Self::valkey(major, minor)
        } else {
            Self::redis(major, minor)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_maps() {
        assert_eq!(
            "7.2".parse::<TargetVersion>(),
            Ok(TargetVersion::redis(7, 2))
        );
        assert_eq!(
            "redis-6.2.14".parse::<TargetVersion>(),
            Ok(TargetVersion::redis(6, 2))
        );
        assert_eq!(
            "valkey-9.1".parse::<TargetVersion>(),
            Ok(TargetVersion::redis(7, 4))
        );
        assert_eq!(
            "valkey-8.0.1".parse::<TargetVersion>(),
            Ok(TargetVersion::redis(7, 2))
        );
        assert_eq!("latest".parse::<TargetVersion>(), Ok(TargetVersion::LATEST));
        assert!("seven".parse::<TargetVersion>().is_err());
        let h = Header {
            flavor: Flavor::Redis,
            version: 9,
        };
        assert_eq!(TargetVersion::for_rdb(&h), TargetVersion::redis(5, 0));
        assert!(TargetVersion::LATEST.at_least(8, 6));
    }
}
