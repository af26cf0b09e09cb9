#!/bin/sh
# Installs the coolock binary for this machine from a GitHub release, after
# checking it against the release's .sha256 file.
#
#   curl -fsSL https://github.com/coolock/coolock/releases/latest/download/install.sh | sh
#
# Environment:
#   COOLOCK_VERSION       the version to install, such as 0.1.0 (default: latest)
#   COOLOCK_INSTALL_DIR   where to put `coolock` (default: /usr/local/bin)
#   COOLOCK_DOWNLOAD_URL  the releases' base URL (default: the GitHub releases)
#
# Exit codes: 0 installed; 1 a failure, told in one line on stderr.
set -eu

base=${COOLOCK_DOWNLOAD_URL:-https://github.com/coolock/coolock/releases}
version=${COOLOCK_VERSION:-latest}
dir=${COOLOCK_INSTALL_DIR:-/usr/local/bin}

fail() {
  echo "coolock install: $*" >&2
  exit 1
}

os=$(uname -s)
arch=$(uname -m)
case $os in
  Linux) system=unknown-linux-gnu ;;
  Darwin) system=apple-darwin ;;
  *) fail "Unsupported operating system '$os': binaries exist for Linux and macOS here, and for Windows on the release page" ;;
esac
case $arch in
  x86_64 | amd64) arch=x86_64 ;;
  aarch64 | arm64) arch=aarch64 ;;
  *) fail "Unsupported architecture '$arch': binaries exist for x86_64 and aarch64" ;;
esac
# The Linux binaries link glibc; on musl (Alpine) they would not start.
if [ "$os" = Linux ] && ls /lib/ld-musl-* >/dev/null 2>&1; then
  fail "Unsupported C library 'musl': the Linux binaries need glibc; run coolock with 'deno run' instead"
fi
asset="coolock-$arch-$system"

case $version in
  latest) url="$base/latest/download/$asset" ;;
  v*) url="$base/download/$version/$asset" ;;
  *) url="$base/download/v$version/$asset" ;;
esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP

# download URL FILE: fails with one line naming the URL.
download() {
  if command -v curl >/dev/null 2>&1; then
    status=$(curl -sL --retry 2 -o "$2" -w '%{http_code}' "$1") || status=${status:-000}
    [ "$status" = 200 ] && return 0
    [ "$status" = 000 ] && fail "Download of '$1' failed: no connection"
    fail "Download of '$1' failed: HTTP $status"
  elif command -v wget >/dev/null 2>&1; then
    wget -q -O "$2" "$1" || fail "Download of '$1' failed: wget exit code $?"
  else
    fail "Neither curl nor wget found: install one to download coolock"
  fi
}

download "$url" "$tmp/$asset"
download "$url.sha256" "$tmp/$asset.sha256"

if command -v sha256sum >/dev/null 2>&1; then
  actual=$(sha256sum "$tmp/$asset" | cut -d ' ' -f 1)
elif command -v shasum >/dev/null 2>&1; then
  actual=$(shasum -a 256 "$tmp/$asset" | cut -d ' ' -f 1)
else
  fail "Neither sha256sum nor shasum found: can't verify the download"
fi
expected=$(cut -d ' ' -f 1 <"$tmp/$asset.sha256")
[ "$actual" = "$expected" ] ||
  fail "Checksum mismatch for '$url': expected '$expected', got '$actual'; nothing was installed"

mkdir -p "$dir" 2>/dev/null || fail "Can't create '$dir': set COOLOCK_INSTALL_DIR or run as root"
# Copy beside the target, then rename: a running coolock is never half-written.
cp "$tmp/$asset" "$dir/.coolock.$$" 2>/dev/null ||
  fail "Can't write to '$dir': set COOLOCK_INSTALL_DIR or run as root"
chmod 755 "$dir/.coolock.$$"
mv -f "$dir/.coolock.$$" "$dir/coolock"
# --version's first line is "coolock X.Y.Z".
installed=$("$dir/coolock" --version 2>/dev/null | { read -r _ number _ && echo "$number"; })
echo "Installed coolock ${installed:-$version} to '$dir/coolock'"
