#!/usr/bin/env bash
# A small file system with reflinks (XFS on a loop device) for the tests of reflinked restores
# (REPRO_TEST_REFLINK_DIR): this machine's own disk is ext4, which has none.
#
#   scripts/reflink-fs.sh mount     prints the folder to export as REPRO_TEST_REFLINK_DIR, or
#                                   nothing (exit 0) where the machine cannot mount one
#   scripts/reflink-fs.sh unmount
#
# Mounting needs root and a loop device; containers without them get nothing, and the tests
# then check the copying restore only (they say so in their docs).
set -euo pipefail
cd "$(dirname "$0")/.."
img=target/reflink.img
dir=$PWD/target/reflink
case "${1:-}" in
  mount)
    if mountpoint -q "$dir" 2>/dev/null; then echo "$dir"; exit 0; fi
    [ "$(id -u)" -eq 0 ] || { echo "reflink-fs: not root, no loop mount" >&2; exit 0; }
    if ! command -v mkfs.xfs >/dev/null; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xfsprogs) >&2 || true
    fi
    command -v mkfs.xfs >/dev/null || { echo "reflink-fs: no mkfs.xfs" >&2; exit 0; }
    mkdir -p target "$dir"
    rm -f "$img"
    truncate -s 1G "$img"
    mkfs.xfs -q -f -m reflink=1 "$img" >&2
    if mount -o loop "$img" "$dir" 2>/dev/null; then
      echo "$dir"
    else
      echo "reflink-fs: this machine refused the loop mount" >&2
      rm -f "$img"
    fi
    ;;
  unmount)
    if mountpoint -q "$dir" 2>/dev/null; then umount "$dir"; fi
    rm -f "$img"
    ;;
  *)
    echo "usage: scripts/reflink-fs.sh mount|unmount" >&2
    exit 2
    ;;
esac
