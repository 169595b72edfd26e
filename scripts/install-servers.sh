#!/usr/bin/env bash
# The project's own installer of real servers, from Debian's packages, without root.
# Run with --help for what it does.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/install-servers.sh [PREFIX] [--build] [--refresh] [--help]

Installs real Redis / Valkey servers from Debian's packages, for scripts/demo.sh and the tests,
without root and without touching /etc/apt or the system's packages:

  redis-<v>   Debian bookworm's redis-server and redis-tools (Redis 7.0): redis-server, redis-cli
  valkey-<v>  Debian bookworm-backports' valkey-server and valkey-tools (Valkey 8.0):
              valkey-server, valkey-cli

Each lands as PREFIX/bin/<name>/redis-server (or valkey-server), the layout the tests read
(crates/testkit/src/catalog.rs). PREFIX defaults to $REDIS_SERVERS_DIR, else
~/.cache/redis-sync/servers. The packages are fetched with `apt-get download` through a private
apt state in PREFIX/debian/ (from the mirror /etc/apt already names) and unpacked with
`dpkg -x`; shared libraries the machine lacks (libjemalloc2, liblzf1, ...) are unpacked beside
them and the server is started through a small wrapper. Idempotent: what is there is kept (also
a version another installer put there), and nothing is downloaded twice.

  --build    also compile the Redis of Debian's sid and experimental suites (Redis 8.x) from
             their Debian source packages with gcc and make: a few minutes each on 2 cores, once.
             A build that fails is reported and skipped.
  --refresh  update the private package lists first (picks up new Debian point releases).
  --help     this text.

Environment: REDIS_SERVERS_DIR (PREFIX), DEBIAN_MIRROR (overrides the mirror read from /etc/apt).
Needs: apt-get, dpkg (Debian or a derivative), and for --build gcc and make.
The full test matrix (Redis 5.0 to 8.6, Valkey 8.0 to 9.1, Redis Stack with modules) is
installed by the shared ../shared/servers/install.sh where it exists; this script covers the
versions that come from Debian's packages.
EOF
}

BUILD=0
REFRESH=0
PREFIX=""
for a in "$@"; do
    case $a in
    --build) BUILD=1 ;;
    --refresh) REFRESH=1 ;;
    -h | --help)
        usage
        exit 0
        ;;
    -*)
        echo "install-servers.sh: unknown option $a (see --help)" >&2
        exit 2
        ;;
    *) PREFIX=$a ;;
    esac
done

die() {
    echo "install-servers.sh: $*" >&2
    exit 1
}
note() { echo "install-servers.sh: $*" >&2; }

if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
    die "needs apt-get and dpkg (Debian's packages); elsewhere install redis-server with your package manager"
fi

PREFIX=$(realpath -m "${PREFIX:-${REDIS_SERVERS_DIR:-$HOME/.cache/redis-sync/servers}}")
DEB="$PREFIX/debian"
mkdir -p "$PREFIX/bin" "$DEB"/{apt,debs,root,libs,src,built}

KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
[[ -r $KEYRING ]] || die "no $KEYRING (package debian-archive-keyring)"

# The mirrors this machine's apt already uses: the main archive and the security archive.
apt_uris() {
    {
        awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }' /etc/apt/sources.list.d/*.sources 2>/dev/null
        awk '/^deb / { for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) { print $i; break } }' \
            /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null
    } | sed 's:/*$::' || true
}
MIRROR=${DEBIAN_MIRROR:-$(apt_uris | grep -v -- '-security' | grep -E '/debian$' | head -1)}
[[ -n $MIRROR ]] || die "cannot find a Debian mirror in /etc/apt; set DEBIAN_MIRROR to one"
SECURITY=$(apt_uris | grep -E -- '-security$' | head -1)
SECURITY=${SECURITY:-${MIRROR%/debian}/debian-security}

# A private apt state for one Debian suite; sets APT_OPTS for apt-get to use it. The lists are
# fetched once (again with --refresh).
APT_OPTS=()
apt_suite() {
    local suite=$1 d="$DEB/apt/$1"
    mkdir -p "$d"/{lists/partial,cache/archives/partial}
    APT_OPTS=(-o "Dir::Etc::sourcelist=$d/sources.list" -o "Dir::Etc::sourceparts=-"
        -o "Dir::State::Lists=$d/lists" -o "Dir::Cache=$d/cache")
    # As root apt hands downloads to the _apt user, who cannot write into a private folder.
    if [[ $(id -u) == 0 ]]; then APT_OPTS+=(-o "APT::Sandbox::User=root"); fi
    {
        echo "deb [signed-by=$KEYRING] $MIRROR $suite main"
        echo "deb-src [signed-by=$KEYRING] $MIRROR $suite main"
        # Stable suites take their fixes from the security archive.
        case $suite in
        *-backports | sid | unstable | experimental) ;;
        *) echo "deb [signed-by=$KEYRING] $SECURITY $suite-security main" ;;
        esac
    } >"$d/sources.list.new"
    if [[ $REFRESH == 1 || ! -f $d/updated ]] || ! cmp -s "$d/sources.list.new" "$d/sources.list"; then
        mv "$d/sources.list.new" "$d/sources.list"
        note "reading Debian $suite's package lists"
        apt-get "${APT_OPTS[@]}" update -qq >"$d/update.log" 2>&1 ||
            die "apt-get update for $suite failed: $(tail -3 "$d/update.log")"
        touch "$d/updated"
    else
        rm -f "$d/sources.list.new"
    fi
}

# Downloads binary packages into $DEB/debs (kept: a second run downloads nothing) and prints
# their paths.
fetch_debs() {
    local pkg file
    for pkg in "$@"; do
        file=$(cd "$DEB/debs" && apt-get "${APT_OPTS[@]}" download --print-uris "$pkg" 2>/dev/null |
            awk '{ print $2 }' | head -1)
        [[ -n $file ]] || die "Debian has no package $pkg in this suite"
        if [[ ! -f $DEB/debs/$file ]]; then
            (cd "$DEB/debs" && apt-get "${APT_OPTS[@]}" download -qq "$pkg" >/dev/null) ||
                die "apt-get download $pkg failed"
        fi
        echo "$DEB/debs/$file"
    done
}

# "5:7.0.15-1~deb12u10" -> "7.0.15"; "8.0.1+dfsg1-1~bpo12+1" -> "8.0.1".
upstream_version() {
    local v=${1#*:}
    v=${v%-*}
    [[ $v =~ ^([0-9]+(\.[0-9]+)*) ]] && echo "${BASH_REMATCH[1]}"
}

is_installed() { # Debian package name
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true) == installed ]]
}

# Makes PREFIX/bin/NAME/EXE start ROOT/usr/bin/EXE: a symlink, or a wrapper that adds the
# unpacked libraries in LIBDIRS (colon-separated) to the library path. The wrapper execs the
# unpacked file by its own name, because these binaries choose their mode by argv[0].
link_exe() { # NAME ROOT EXE LIBDIRS
    local name=$1 root=$2 exe=$3 libdirs=$4 dest="$PREFIX/bin/$1/$3"
    [[ -e $root/usr/bin/$exe ]] || return 0
    mkdir -p "$PREFIX/bin/$name"
    rm -f "$dest"
    if [[ -z $libdirs ]]; then
        ln -s "$root/usr/bin/$exe" "$dest"
    else
        # shellcheck disable=SC2016 # $LD_LIBRARY_PATH and $@ are the wrapper's own.
        printf '#!/bin/sh\nLD_LIBRARY_PATH=%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} exec %s "$@"\n' \
            "$libdirs" "$root/usr/bin/$exe" >"$dest"
        chmod +x "$dest"
    fi
}

# Installs one server from Debian binary packages: SUITE FLAVOR SERVER_PKG TOOLS_PKG.
# The tools package holds the one real binary (FLAVOR-check-rdb; redis-server is a symlink to
# it) and the CLI; the server package holds the symlink.
install_deb_server() {
    local suite=$1 flavor=$2 server_pkg=$3 tools_pkg=$4
    local stamp="$DEB/$suite-$flavor.done" name root debs tools_deb dep libdirs="" missing
    if [[ -f $stamp ]]; then
        name=$(cat "$stamp")
        if [[ -e $PREFIX/bin/$name/$flavor-server ]]; then
            note "$name (Debian $suite) already installed"
            return 0
        fi
    fi
    apt_suite "$suite"
    mapfile -t debs < <(fetch_debs "$server_pkg" "$tools_pkg")
    tools_deb=${debs[1]}
    name="$flavor-$(upstream_version "$(dpkg-deb -f "$tools_deb" Version)")"
    [[ $name != "$flavor-" ]] || die "cannot read the version of $tools_deb"
    if [[ -e $PREFIX/bin/$name/$flavor-server ]]; then
        note "$name already in $PREFIX/bin (kept as it is)"
        echo "$name" >"$stamp"
        return 0
    fi
    root="$DEB/root/$name"
    rm -rf "$root"
    for f in "${debs[@]}"; do dpkg-deb -x "$f" "$root"; done
    [[ -e $root/usr/bin/$flavor-server ]] || ln -s "$flavor-check-rdb" "$root/usr/bin/$flavor-server"

    # Shared libraries this machine lacks: the tools package's direct dependencies that are not
    # installed, unpacked into $DEB/libs/<package>.
    for dep in $(dpkg-deb -f "$tools_deb" Depends | tr ',' '\n' | sed -E 's/\|.*//; s/\(.*\)//; s/:any//' |
        tr -d ' '); do
        # The C library must match the system's dynamic loader: never taken from a package.
        [[ $dep == lib* && $dep != libc6 ]] || continue
        is_installed "$dep" && continue
        if [[ ! -d $DEB/libs/$dep ]]; then
            note "unpacking $dep (not installed on this machine)"
            dpkg-deb -x "$(fetch_debs "$dep")" "$DEB/libs/$dep.tmp"
            mv "$DEB/libs/$dep.tmp" "$DEB/libs/$dep"
        fi
        while read -r d; do libdirs="${libdirs:+$libdirs:}$d"; done < <(
            find "$DEB/libs/$dep" -regex '.*-linux-gnu[^/]*/[^/]*\.so[^/]*' -printf '%h\n' | sort -u
        )
    done
    missing=$(LD_LIBRARY_PATH="$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
        ldd "$root/usr/bin/$flavor-check-rdb" 2>/dev/null | awk '/not found/ { print $1 }' || true)
    [[ -z $missing ]] || die "$name needs libraries this machine lacks: $missing"

    link_exe "$name" "$root" "$flavor-server" "$libdirs"
    link_exe "$name" "$root" "$flavor-cli" "$libdirs"
    "$PREFIX/bin/$name/$flavor-server" --version >/dev/null || die "$name does not start"
    echo "$name" >"$stamp"
    note "installed $name (Debian $suite)"
}

# Compiles the Redis of a Debian suite from its source package (the upstream tarball Debian
# ships, not patched), as PREFIX/bin/redis-<v>/redis-server. Returns non-zero on failure.
build_suite() {
    local suite=$1 dir="$DEB/src/$1" orig v
    apt_suite "$suite"
    mkdir -p "$dir"
    (cd "$dir" && apt-get "${APT_OPTS[@]}" source --download-only -qq redis >/dev/null 2>&1) || return 1
    orig=$(find "$dir" -maxdepth 1 -name 'redis_*.orig.tar.*' | sort | tail -1)
    [[ -n $orig ]] || return 1
    v=$(basename "$orig" | sed -E 's/^redis_(.*)\.orig\.tar\..*$/\1/')
    v=$(upstream_version "$v")
    if [[ -e $PREFIX/bin/redis-$v/redis-server ]]; then
        note "redis-$v (Debian $suite) already installed"
        return 0
    fi
    rm -rf "$dir/redis-$v" && mkdir -p "$dir/redis-$v"
    tar xf "$orig" -C "$dir/redis-$v" --strip-components=1 || return 1
    note "building redis-$v (Debian $suite) with make; log: $dir/build.log"
    # No TLS, no systemd, plain -O2 (the default adds LTO, slower to link on small machines).
    make -C "$dir/redis-$v" -j"$(nproc)" BUILD_TLS=no USE_SYSTEMD=no OPTIMIZATION=-O2 \
        >"$dir/build.log" 2>&1 || return 1
    # The two binaries are self-contained (jemalloc, Lua and hiredis linked in): keep them and
    # drop the build tree (about 230 MB each).
    mkdir -p "$DEB/built/redis-$v" "$PREFIX/bin/redis-$v"
    cp "$dir/redis-$v/src/redis-server" "$dir/redis-$v/src/redis-cli" "$DEB/built/redis-$v/"
    rm -rf "$dir/redis-$v"
    ln -sfn "$DEB/built/redis-$v/redis-server" "$PREFIX/bin/redis-$v/redis-server"
    ln -sfn "$DEB/built/redis-$v/redis-cli" "$PREFIX/bin/redis-$v/redis-cli"
    note "installed redis-$v (built from Debian $suite's source)"
}

install_deb_server bookworm redis redis-server redis-tools
install_deb_server bookworm-backports valkey valkey-server valkey-tools

if [[ $BUILD == 1 ]]; then
    if ! command -v make >/dev/null || ! command -v gcc >/dev/null; then die "--build needs gcc and make"; fi
    for suite in sid experimental; do
        [[ -f $DEB/src/$suite.done ]] && continue
        if build_suite "$suite"; then
            touch "$DEB/src/$suite.done"
        else
            note "warning: the Redis of Debian $suite did not build; skipped (see $DEB/src/$suite/)"
        fi
    done
fi

echo "servers in $PREFIX/bin (export REDIS_SERVERS_DIR=$PREFIX for the tests):"
for d in "$PREFIX"/bin/*/; do
    name=$(basename "$d")
    exe=$(find "$d" -maxdepth 1 -name '*-server' -printf '%f\n' | head -1)
    [[ -n $exe ]] || continue
    printf '  %-14s %s\n' "$name" "$("$d/$exe" --version 2>&1 | head -1)"
done
