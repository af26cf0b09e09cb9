/**
 * The watchdog's two halves as `/bin/sh` scripts (src/cli/watchdog.ts says
 * why it is built this way), with the line protocol they speak. Every tool
 * is named by absolute path, so the job's PATH can't break them, and they
 * pass their own parameters as arguments, never in the environment.
 *
 * @module
 */

/** Where `/bin/sh` is; nothing else is looked up. */
export const SHELL = "/bin/sh";

/**
 * The clock: `sh -c CLOCK coolock <id> <command>`. It reports on stdout
 * `missing <tool>`, `nodir <why>`, `notfound`, `noexec <path>`,
 * `nointerp <interpreter>`, `noexecinterp <interpreter>`, or
 * `ready <fifo>`. Then it reads, on stdin: `go <seconds>` (open the gate,
 * arm the timer), `<seconds>` (a new deadline, seconds from now),
 * `members <pgid>` (answers `members <others> <all>`, or `members - <0|1>`
 * without /proc), `signal <NAME> <pgid>` and `done`; end of file is
 * coolock's end.
 */
export const CLOCK = `trap '' TERM INT HUP QUIT
umask 077
say() { printf '%s\\n' "$*"; }
for tool in /bin/sleep /bin/mkdir /bin/rm /bin/dd; do
  [ -x "$tool" ] || { say "missing $tool"; exit 0; }
done
mkfifo=/usr/bin/mkfifo
[ -x "$mkfifo" ] || mkfifo=/bin/mkfifo
[ -x "$mkfifo" ] || { say "missing /usr/bin/mkfifo"; exit 0; }
nl='
'
case \${TMPDIR-} in *"$nl"*) base=/tmp ;; /?*) base=\${TMPDIR%/} ;; *) base=/tmp ;; esac
dir=$base/coolock-$1
fifo=$dir/watchdog
out=$(/bin/mkdir "$dir" 2>&1) || { say "nodir $out"; exit 0; }
out=$("$mkfifo" "$fifo" 2>&1) || { /bin/rm -rf "$dir"; say "nodir $out"; exit 0; }
exec 3<>"$fifo"
quit() { exec 3>&-; /bin/rm -rf "$dir"; exit 0; }
cmd= found=
try() {
  if [ -f "$1" ] && [ -x "$1" ]; then cmd=$1; return 0; fi
  [ -e "$1" ] && found=$1
  return 1
}
case $2 in
"") ;;
*/*) try "$2" ;;
*) rest=\${PATH-/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin}
  while :; do
    d=\${rest%%:*}
    try "\${d:-.}/$2" && break
    [ "$rest" = "$d" ] && break
    rest=\${rest#*:}
  done ;;
esac
if [ -z "$cmd" ]; then
  if [ -n "$found" ]; then say "noexec $found"; else say notfound; fi
  quit
fi
if [ "$(/bin/dd if="$cmd" bs=2 count=1 2>/dev/null)" = "#!" ]; then
  IFS= read -r line <"$cmd" || :
  line=\${line#??}
  line=\${line#"\${line%%[! 	]*}"}
  interp=\${line%%[ 	]*}
  if [ -n "$interp" ] && ! { [ -f "$interp" ] && [ -x "$interp" ]; }; then
    if [ -e "$interp" ]; then say "noexecinterp $interp"; else say "nointerp $interp"; fi
    quit
  fi
fi
say "ready $fifo"
timer=
cancel() {
  [ -n "$timer" ] || return 0
  kill -USR1 "$timer" 2>/dev/null
  wait "$timer"
  timer=
}
arm() {
  cancel
  ( exec 3>&-
    woken= sleeper=
    trap 'woken=1; [ -z "$sleeper" ] || kill -KILL "$sleeper" 2>/dev/null' USR1
    /bin/sleep "$1" & sleeper=$!
    [ -z "$woken" ] || kill -KILL "$sleeper" 2>/dev/null
    wait "$sleeper"; wait "$sleeper"
    [ -n "$woken" ] || echo expired 1<>"$fifo"
  ) &
  timer=$!
}
census() {
  group=$1 guard= others=0 all=0
  if ! kill -0 -"$group" 2>/dev/null; then say "members 0 0"; return; fi
  if ! [ -r /proc/self/stat ]; then say "members - 1"; return; fi
  IFS= read -r guard <"$dir/guard" 2>/dev/null || guard=
  candidates=$(/bin/grep -h -s -E "\\) [^Z] -?[0-9]+ $group " /proc/[0-9]*/stat)
  while IFS= read -r stat; do
    [ -n "$stat" ] || continue
    pid=\${stat%% *}
    set -- \${stat##*) }
    [ "$1" != Z ] && [ "$3" = "$group" ] || continue
    all=$((all + 1))
    [ "$pid" = "$guard" ] || [ "$2" = "$guard" ] || others=$((others + 1))
  done <<CANDIDATES
$candidates
CANDIDATES
  say "members $others $all"
}
while IFS= read -r line; do
  case $line in
  "go "*) echo go >&3; arm "\${line#go }" ;;
  "members "*) census "\${line#members }" ;;
  "signal "*)
    set -- \${line#signal }
    case $1 in TERM | INT | HUP | QUIT | KILL) kill -"$1" -"$2" 2>/dev/null ;; esac ;;
  done) cancel; echo done >&3; break ;;
  *) arm "$line" ;;
  esac
done
exec 3>&-
cancel
/bin/rm -rf "$dir"`;

/**
 * The guard, forked by the trampoline with the FIFO's read end on fd 4 and
 * `$grace` (kill-after, in seconds) set. It ignores the signals coolock
 * forwards, so that it outlives a job that is being stopped.
 */
const GUARD = `trap '' TERM INT HUP QUIT
exec </dev/null >/dev/null 2>&1
while IFS= read -r message <&4; do
  case $message in
  expired) break ;;
  done) exit 0 ;;
  esac
done
kill -TERM 0
group=$$ self= napper=
IFS=' ' read -r self rest </proc/self/stat 2>/dev/null || self=
live() {
  IFS= read -r stat <"/proc/$1/stat" 2>/dev/null || return 1
  stat=\${stat##*) }
  [ "\${stat%% *}" != Z ]
}
others() {
  for file in /proc/[0-9]*/stat; do
    IFS= read -r stat <"$file" 2>/dev/null || continue
    pid=\${stat%% *}
    [ "$pid" = "$self" ] || [ "$pid" = "$napper" ] && continue
    set -- \${stat##*) }
    [ "$1" != Z ] && [ "$3" = "$group" ] && return 0
  done
  return 1
}
/bin/sleep "$grace" & napper=$!
if [ -n "$self" ]; then
  while others && live "$napper"; do /bin/sleep 0.05; done
  kill -KILL "$napper" 2>/dev/null
fi
wait "$napper"
kill -KILL 0`;

/**
 * The trampoline: `sh -c TRAMPOLINE coolock <fifo> <grace> command args…`.
 * It drops coolock's own `COOLOCK_*` settings from the environment (the
 * shell sees it whole, whatever Deno may read), waits at the FIFO for the
 * clock's `go` (end of file: coolock is already gone, so the command never
 * starts), double-forks the guard, and `exec`s the command in place: same
 * PID, same argv, same stdio, and no child the user did not start.
 */
export const TRAMPOLINE = `fifo=$1 grace=$2
shift 2
nl='
'
vars=$(export -p)
while [ -n "$vars" ]; do
  line=\${vars%%"$nl"*}
  case $vars in *"$nl"*) vars=\${vars#*"$nl"} ;; *) vars= ;; esac
  case $line in
  "export COOLOCK_"*)
    name=\${line#export }
    name=\${name%%=*}
    case $name in
    COOLOCK_LOCK | COOLOCK_NODE | COOLOCK_FENCING_TOKEN | COOLOCK_SLOT | *[!A-Za-z0-9_]*) ;;
    *) unset "$name" ;;
    esac ;;
  esac
done
{ exec 3<>"$fifo" 4<"$fifo" 3>&-; } 2>/dev/null || exit 125
IFS= read -r go <&4 && [ "$go" = go ] || exit 125
( ( ${GUARD} ) & echo $! 2>/dev/null >"\${fifo%/*}/guard" )
exec 4<&-
exec "$@"`;
