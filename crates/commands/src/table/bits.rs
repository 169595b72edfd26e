//! Small bit sets for command flags, ACL categories and key-spec flags, with their server names.

macro_rules! bitset {
    (
        $(#[$meta:meta])*
        $name:ident($repr:ty) { $( $(#[$cmeta:meta])* $konst:ident = $bit:expr, $text:literal; )* }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name(pub(crate) $repr);

        impl $name {
            $( $(#[$cmeta])* pub const $konst: $name = $name(1 << $bit); )*
            /// The empty set.
            pub const EMPTY: $name = $name(0);
            /// Every member with the name the server uses for it, in bit order.
            pub const NAMES: &'static [($name, &'static str)] = &[ $( ($name::$konst, $text), )* ];

            /// The union of two sets.
            #[must_use]
            #[inline]
            pub const fn union(self, other: $name) -> $name {
                $name(self.0 | other.0)
            }
            /// True when every member of `other` is in `self`.
            #[inline]
            pub const fn contains(self, other: $name) -> bool {
                self.0 & other.0 == other.0
            }
            /// True when `self` and `other` share a member.
            #[inline]
            pub const fn intersects(self, other: $name) -> bool {
                self.0 & other.0 != 0
            }
            /// True for the empty set.
            pub const fn is_empty(self) -> bool {
                self.0 == 0
            }
            /// The raw bits.
            pub const fn bits(self) -> $repr {
                self.0
            }
            /// The member called `name` (as the server spells it, ASCII case-insensitive).
            pub fn from_name(name: &str) -> Option<$name> {
                let name = name.strip_prefix('@').unwrap_or(name);
                Self::NAMES.iter().find(|(_, n)| n.eq_ignore_ascii_case(name)).map(|(f, _)| *f)
            }
            /// The names of the members, in bit order.
            pub fn names(self) -> impl Iterator<Item = &'static str> {
                Self::NAMES.iter().filter(move |(f, _)| self.contains(*f)).map(|(_, n)| *n)
            }
        }

        impl std::ops::BitOr for $name {
            type Output = $name;
            fn bitor(self, rhs: $name) -> $name {
                self.union(rhs)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_set().entries(self.names()).finish()
            }
        }
    };
}

bitset! {
    /// Command flags as `COMMAND INFO` reports them (`write`, `readonly`, `denyoom`, …).
    ///
    /// Redis hides some internal flags from `COMMAND` (notably `may_replicate`), so they are
    /// not here; the sync-support rules name those commands instead (see [`crate::SyncAction`]).
    Flags(u32) {
        /// `write`: may modify the keyspace.
        WRITE = 0, "write";
        /// `readonly`: reads only.
        READONLY = 1, "readonly";
        /// `denyoom`: may grow memory; refused when out of memory.
        DENYOOM = 2, "denyoom";
        /// `module`: implemented by a module.
        MODULE = 3, "module";
        /// `admin`: an administrative command.
        ADMIN = 4, "admin";
        /// `pubsub`: a Pub/Sub command.
        PUBSUB = 5, "pubsub";
        /// `noscript`: not allowed in scripts.
        NOSCRIPT = 6, "noscript";
        /// `blocking`: may block the client.
        BLOCKING = 7, "blocking";
        /// `loading`: allowed while loading the dataset.
        LOADING = 8, "loading";
        /// `stale`: allowed on a replica with stale data.
        STALE = 9, "stale";
        /// `skip_monitor`: not shown in MONITOR.
        SKIP_MONITOR = 10, "skip_monitor";
        /// `skip_slowlog`: not shown in the slow log.
        SKIP_SLOWLOG = 11, "skip_slowlog";
        /// `asking`: allowed on an importing slot after ASKING.
        ASKING = 12, "asking";
        /// `fast`: O(1) or O(log N).
        FAST = 13, "fast";
        /// `no_auth`: allowed before authentication.
        NO_AUTH = 14, "no_auth";
        /// `no_mandatory_keys`: may take keys but need not.
        NO_MANDATORY_KEYS = 15, "no_mandatory_keys";
        /// `no_async_loading`: refused during async loading.
        NO_ASYNC_LOADING = 16, "no_async_loading";
        /// `no_multi`: not allowed inside MULTI.
        NO_MULTI = 17, "no_multi";
        /// `movablekeys`: key positions depend on the arguments.
        MOVABLEKEYS = 18, "movablekeys";
        /// `allow_busy`: allowed while a script is busy.
        ALLOW_BUSY = 19, "allow_busy";
        /// `skip_commandlog`: not recorded in Valkey's command log.
        SKIP_COMMANDLOG = 20, "skip_commandlog";
    }
}

bitset! {
    /// ACL categories (`@write`, `@string`, …), without the `@`.
    AclCategories(u32) {
        /// `@keyspace`
        KEYSPACE = 0, "keyspace";
        /// `@read`
        READ = 1, "read";
        /// `@write`
        WRITE = 2, "write";
        /// `@set`
        SET = 3, "set";
        /// `@sortedset`
        SORTEDSET = 4, "sortedset";
        /// `@list`
        LIST = 5, "list";
        /// `@hash`
        HASH = 6, "hash";
        /// `@string`
        STRING = 7, "string";
        /// `@bitmap`
        BITMAP = 8, "bitmap";
        /// `@hyperloglog`
        HYPERLOGLOG = 9, "hyperloglog";
        /// `@geo`
        GEO = 10, "geo";
        /// `@stream`
        STREAM = 11, "stream";
        /// `@pubsub`
        PUBSUB = 12, "pubsub";
        /// `@admin`
        ADMIN = 13, "admin";
        /// `@fast`
        FAST = 14, "fast";
        /// `@slow`
        SLOW = 15, "slow";
        /// `@blocking`
        BLOCKING = 16, "blocking";
        /// `@dangerous`
        DANGEROUS = 17, "dangerous";
        /// `@connection`
        CONNECTION = 18, "connection";
        /// `@transaction`
        TRANSACTION = 19, "transaction";
        /// `@scripting`
        SCRIPTING = 20, "scripting";
    }
}

bitset! {
    /// Key-spec flags: how a command uses the keys one key spec finds.
    KeySpecFlags(u16) {
        /// `RO`: read only.
        RO = 0, "RO";
        /// `RW`: read and written.
        RW = 1, "RW";
        /// `OW`: overwritten.
        OW = 2, "OW";
        /// `RM`: deleted.
        RM = 3, "RM";
        /// `access`: the value is returned, copied or used.
        ACCESS = 4, "access";
        /// `update`: the value is updated.
        UPDATE = 5, "update";
        /// `insert`: data is added, none changed.
        INSERT = 6, "insert";
        /// `delete`: data is removed.
        DELETE = 7, "delete";
        /// `not_key`: a key name that is not a key (only its slot counts).
        NOT_KEY = 8, "not_key";
        /// `incomplete`: the spec may miss keys; Redis uses a key procedure for this command.
        INCOMPLETE = 9, "incomplete";
        /// `variable_flags`: the flags depend on the arguments.
        VARIABLE_FLAGS = 10, "variable_flags";
    }
}

/// `flags!(WRITE, DENYOOM)`: a [`Flags`] constant (used by the generated table).
macro_rules! flags {
    ($($f:ident),* $(,)?) => { Flags::EMPTY $(.union(Flags::$f))* };
}
/// `acl!(WRITE, STRING)`: an [`AclCategories`] constant.
macro_rules! acl {
    ($($f:ident),* $(,)?) => { AclCategories::EMPTY $(.union(AclCategories::$f))* };
}
/// `ksf!(RW, ACCESS)`: a [`KeySpecFlags`] constant.
macro_rules! ksf {
    ($($f:ident),* $(,)?) => { KeySpecFlags::EMPTY $(.union(KeySpecFlags::$f))* };
}
pub(crate) use {acl, flags, ksf};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let f = flags!(WRITE, DENYOOM, MOVABLEKEYS);
        assert_eq!(
            f.names().collect::<Vec<_>>(),
            ["write", "denyoom", "movablekeys"]
        );
        assert_eq!(Flags::from_name("WRITE"), Some(Flags::WRITE));
        assert_eq!(
            AclCategories::from_name("@sortedset"),
            Some(AclCategories::SORTEDSET)
        );
        assert_eq!(
            KeySpecFlags::from_name("not_key"),
            Some(KeySpecFlags::NOT_KEY)
        );
        assert!(f.contains(Flags::WRITE | Flags::DENYOOM));
        assert!(!f.contains(Flags::WRITE | Flags::FAST));
        assert_eq!(format!("{:?}", acl!(READ, STRING)), r#"{"read", "string"}"#);
        assert!(ksf!().is_empty());
    }
}
