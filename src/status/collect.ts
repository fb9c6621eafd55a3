import { recordPrelude } from "../remote/records.js";

/**
 * The one script `provision status` runs on a host: POSIX sh with the tools every Linux host has
 * (awk, find, grep, sort, od; ss from iproute2 where installed), so nothing is installed and no
 * file is written. It reads counters, then everything else (process and socket tables), then
 * sleeps the rest of the window and reads the counters again: the window's increase of a drop
 * counter says the wall is being hit now, not since boot. Every table is aggregated on the host
 * (per process, per destination, per listener), so the output stays small at 100k sockets.
 */

/** Read once per host, by one grep. */
export const STATUS_SYSCTLS = [
  "net/ipv4/ip_local_port_range",
  "net/ipv4/ip_local_reserved_ports",
  "net/ipv4/tcp_max_tw_buckets",
  "net/ipv4/tcp_max_orphans",
  "net/core/somaxconn",
  "net/ipv4/tcp_max_syn_backlog",
  "net/ipv4/tcp_syncookies",
  "net/ipv4/tcp_keepalive_time",
  "net/ipv4/tcp_keepalive_intvl",
  "net/ipv4/tcp_keepalive_probes",
  "fs/file-nr",
  "fs/file-max",
  "net/netfilter/nf_conntrack_count",
  "net/netfilter/nf_conntrack_max",
] as const;

/** Processes listed, by fds / soft limit: more than any report shows. */
export const PROCESSES_LISTED = 20;
/** Established sockets listed by time since they last received data. */
export const IDLE_SOCKETS_LISTED = 5;

/** Hundredths of a second since boot, from /proc/uptime (sh has integers only). */
const NOW_CS = [
  "now_cs() {",
  "  read -r up _ < /proc/uptime",
  // "12.05" → 1205; 1$f-100 keeps a leading zero from reading as octal.
  "  s=${up%.*}; f=${up#*.}; echo $((s * 100 + 1$f - 100))",
  "}",
].join("\n");

/**
 * Per process: open fds (entries of /proc/PID/fd), soft and hard nofile (/proc/PID/limits), name.
 * Lines `P ratio pid fds soft hard comm`, worst ratio first, and one `S processes fds` line. A
 * process holding more fds than its soft limit lowered the limit itself after opening them (sshd's
 * pre-auth sandbox sets 1): it opens no more, so it is at no wall and is left out. No apostrophe
 * may appear in the awk programs: they are single-quoted.
 */
const PROCESSES = String.raw`procs=$( {
  find /proc/[0-9]*/fd -mindepth 1 -maxdepth 1 2>/dev/null | awk -F/ '{ print "F " $3 }'
  grep -H '^Max open files' /proc/[0-9]*/limits 2>/dev/null
  grep -H '' /proc/[0-9]*/comm 2>/dev/null
} | awk '
  $1 == "F" { fds[$2]++; total++; next }
  {
    split($0, part, "/"); pid = part[3]
    if ($0 ~ /\/limits:Max open files/) { soft[pid] = $4; hard[pid] = $5 }
    else { comm[pid] = substr($0, index($0, ":") + 1) }
  }
  END {
    n = 0
    for (pid in fds) {
      n++
      if (soft[pid] ~ /^[0-9]+$/ && soft[pid] > 0 && fds[pid] <= soft[pid] + 0)
        printf "P %.6f %s %d %s %s %s\n", fds[pid] / soft[pid], pid, fds[pid], soft[pid], hard[pid], comm[pid]
    }
    printf "S %d %d\n", n, total
  }') || procs=""
printf '%s\n' "$procs" | grep '^S '
printf '%s\n' "$procs" | grep '^P ' | sort -k2,2gr | head -n ${PROCESSES_LISTED}
seen=0; unreadable=0
for d in /proc/[0-9]*/fd; do seen=$((seen + 1)); [ -r "$d" ] || unreadable=$((unreadable + 1)); done
echo "U $seen $unreadable"`;

/**
 * /proc/net/tcp and tcp6, twice: the first pass collects listening ports, the second counts every
 * other socket by state and, for outbound ones (local port not a listening port), by destination,
 * with its TIME_WAIT share and the number of local addresses used to reach it. Addresses stay in
 * the kernel's hex; the controller decodes them. SYN_RECV sockets are counted per local endpoint.
 */
const SOCKETS = String.raw`files=""; n=0
for f in /proc/net/tcp /proc/net/tcp6; do if [ -r "$f" ]; then files="$files $f"; n=$((n + 1)); fi; done
if [ "$n" -gt 0 ]; then
  awk -v files="$n" '
    FNR == 1 { pass++; next }
    pass <= files { if ($4 == "0A") { split($2, l, ":"); listening[l[2]] = 1; print "L " $2 " " substr($5, index($5, ":") + 1) }; next }
    $4 == "0A" { next }
    {
      state[$4]++
      if ($4 == "03") syn[$2]++
      split($2, l, ":"); split($3, r, ":")
      if (r[2] == "0000" || (l[2] in listening)) next
      out[$3]++
      if ($4 == "06") tw[$3]++
      if (!(($3 SUBSEP l[1]) in via)) { via[$3, l[1]] = 1; sources[$3]++ }
    }
    END {
      for (s in state) print "T " s " " state[s]
      for (d in out) print "O " d " " out[d] " " (tw[d] + 0) " " sources[d]
      for (e in syn) print "Y " e " " syn[e]
    }' $files $files
fi`;

/**
 * Established sockets from ss -tnoi: how many, how many with a keepalive timer, how many have
 * received nothing for longer than keepalive's detection time (time + intvl × probes), and the
 * longest idle. ss prints lastrcv only when it is not 0. Lines `K established keepalive idle
 * idleWithKeepalive` and `I idleMs keepalive local peer`.
 */
const KEEPALIVE = String.raw`if command -v ss >/dev/null 2>&1; then
  read -r kt < /proc/sys/net/ipv4/tcp_keepalive_time; read -r ki < /proc/sys/net/ipv4/tcp_keepalive_intvl
  read -r kp < /proc/sys/net/ipv4/tcp_keepalive_probes
  LC_ALL=C ss -tnoi state established | awk -v detect=$(( (kt + ki * kp) * 1000 )) -v listed=${IDLE_SOCKETS_LISTED} '
    function flush() {
      if (sock == "") return
      est++; if (ka) kas++
      if (idle > detect) { idles++; if (ka) idleka++ }
      for (i = 1; i <= listed; i++) if (!(i in top) || idle > top[i]) break
      if (i <= listed) {
        for (j = listed; j > i; j--) if ((j - 1) in top) { top[j] = top[j - 1]; what[j] = what[j - 1] }
        top[i] = idle; what[i] = ka " " sock
      }
      sock = ""
    }
    NR == 1 && $1 == "Recv-Q" { next }
    /^[ \t]/ { if (match($0, /lastrcv:[0-9]+/)) idle = substr($0, RSTART + 8, RLENGTH - 8) + 0; next }
    { flush(); sock = $3 " " $4; ka = ($0 ~ /timer:\(keepalive/) ? 1 : 0; idle = 0 }
    END {
      flush()
      printf "K %d %d %d %d\n", est, kas, idles, idleka
      for (i = 1; i <= listed; i++) if (i in top) print "I " top[i] " " what[i]
    }'
else
  echo "ss is not installed (package iproute2)"
  exit 127
fi`;

const COUNTERS = [
  "  rec netstat$1 ok; cat /proc/net/netstat 2>/dev/null | b64",
  "  if [ -r /proc/net/stat/nf_conntrack ]; then rec conntrack$1 ok; b64 < /proc/net/stat/nf_conntrack; else rec conntrack$1 absent; echo; fi",
].join("\n");

export function statusScript(nonce: string, windowSeconds: number): string {
  const windowCs = Math.round(windowSeconds * 100);
  const sysctlPaths = STATUS_SYSCTLS.map((k) => `/proc/sys/${k}`).join(" ");
  return [
    recordPrelude(nonce),
    NOW_CS,
    `counters() {\n${COUNTERS}\n}`,
    "t0=$(now_cs)",
    "counters 0",
    "rec endian ok; printf '\\001\\000' | od -An -tu2 | tr -d ' ' | b64",
    `rec sysctls ok; grep -H '' ${sysctlPaths} 2>/dev/null | b64`,
    "rec sockstat ok; cat /proc/net/sockstat 2>/dev/null | b64",
    `rec processes ok; { ${PROCESSES}\n} | b64`,
    `rec sockets ok; { ${SOCKETS}\n} | b64`,
    "if command -v ss >/dev/null 2>&1; then rec listeners ok; LC_ALL=C ss -ltn | b64; else rec listeners missing; echo; fi",
    `out=$( { ${KEEPALIVE}\n} 2>&1 ) && { rec keepalive ok; printf '%s\\n' "$out" | b64; } || { rec keepalive missing; printf '%s\\n' "$out" | b64; }`,
    `left=$(( ${windowCs} - ($(now_cs) - t0) ))`,
    'if [ "$left" -gt 0 ]; then sleep "$((left / 100)).$((left % 100 / 10))$((left % 10))"; fi',
    "counters 1",
    "rec window ok; echo $(( $(now_cs) - t0 )) | b64",
  ].join("\n");
}
