# Run as root on a balancer by `opsctl deploy` (`sh -c`, POSIX sh), the new backends file on
# stdin: replace the file, refuse it (and put the old one back) if `nginx -t` does, reload
# gracefully, then wait until every worker of the old configuration has exited — that is,
# until every request in flight through the old configuration has been answered.
#
#   swap_backends.sh --file /etc/nginx/opsctl-backends/NAME.conf --wait 60 \
#                    --pid-file /run/nginx.pid
#
# Exit 3: nginx rejected it (what nginx said is printed); 4: old workers still busy after
# --wait seconds; 5: the reload failed; 2: bad arguments.
set -u
file="" wait="" pidfile=""
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || { echo "swap_backends: $1 needs a value"; exit 2; }
  case "$1" in
    --file) file="$2" ;;
    --wait) wait="$2" ;;
    --pid-file) pidfile="$2" ;;
    *) echo "swap_backends: unknown argument $1"; exit 2 ;;
  esac
  shift 2
done
[ -n "$file" ] || { echo "swap_backends: --file is required"; exit 2; }
[ -n "$wait" ] || { echo "swap_backends: --wait is required"; exit 2; }
[ -n "$pidfile" ] || { echo "swap_backends: --pid-file is required"; exit 2; }

f="$file"
cat > "$f.new"
cp -p "$f" "$f.bak" 2>/dev/null || true
mv "$f.new" "$f"
if ! out=$(nginx -t 2>&1); then
  if [ -f "$f.bak" ]; then mv "$f.bak" "$f"; fi
  echo "$out"; exit 3
fi
rm -f "$f.bak"
master=$(cat "$pidfile")
old=$(pgrep -P "$master" | tr '\n' ' ')
systemctl reload nginx.service || exit 5
end=$(( $(date +%s) + wait ))
while :; do
  busy=""
  for p in $old; do
    if [ -d "/proc/$p" ] && [ "$(cat /proc/$p/stat 2>/dev/null | cut -d' ' -f4)" = "$master" ]; then
      busy="$busy $p"
    fi
  done
  [ -z "$busy" ] && exit 0
  if [ "$(date +%s)" -ge "$end" ]; then echo "old workers still busy:$busy"; exit 4; fi
  sleep 0.1
done
