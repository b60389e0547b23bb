# Run as root on a host of a component by `opsctl deploy` (`sh -c`, POSIX sh): switch the
# component to a release and restart its unit.
#
#   switch_release.sh --base /opt/NAME --unit NAME.service --version V --owner root:root \
#                     --artifact push|present --previous record|-|VERSION
#
# --artifact push: the release's tar.gz is on stdin, unpacked unless the release is already
#   there; present: the release must be there already (stdin is read and dropped either way).
# --previous record: `previous` points at the release that ran (unless it is this one);
#   VERSION: `previous` is set back to that release (a failed release is not one to return
#   to); -: there is none.
# Exit 3: the release is not on the host; 2: bad arguments; otherwise the failing command's.
set -eu
base="" unit="" version="" owner="" artifact="" previous=""
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || { echo "switch_release: $1 needs a value"; exit 2; }
  case "$1" in
    --base) base="$2" ;;
    --unit) unit="$2" ;;
    --version) version="$2" ;;
    --owner) owner="$2" ;;
    --artifact) artifact="$2" ;;
    --previous) previous="$2" ;;
    *) echo "switch_release: unknown argument $1"; exit 2 ;;
  esac
  shift 2
done
for name in base unit version owner artifact previous; do
  eval "value=\$$name"
  [ -n "$value" ] || { echo "switch_release: --$name is required"; exit 2; }
done
case "$artifact" in push|present) ;; *) echo "switch_release: --artifact push|present"; exit 2 ;; esac

rel="$base/releases/$version"
if [ ! -d "$rel" ]; then
  [ "$artifact" = push ] || { echo "release $version is not on this host"; exit 3; }
  rm -rf "$rel.incoming"; mkdir -p "$rel.incoming"
  tar -xzf - -C "$rel.incoming" --no-same-owner
  chown -R "$owner" "$rel.incoming"; chmod -R go-w "$rel.incoming"
  mv "$rel.incoming" "$rel"
else
  cat > /dev/null
fi
touch "$rel"
old=$(readlink "$base/current" || true)
if [ "$previous" = record ]; then
  if [ -n "$old" ] && [ "$old" != "releases/$version" ]; then
    ln -sfn "$old" "$base/previous.new" && mv -T "$base/previous.new" "$base/previous"
  fi
elif [ "$previous" = - ]; then
  rm -f "$base/previous"
else
  ln -sfn "releases/$previous" "$base/previous.new" && mv -T "$base/previous.new" "$base/previous"
fi
ln -sfn "releases/$version" "$base/current.new" && mv -T "$base/current.new" "$base/current"
systemctl restart "$unit"
