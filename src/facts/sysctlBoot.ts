import { defineProbe, ProbeParseError } from "./probe.js";

/**
 * Which file sets each sysctl key at boot. systemd-sysctl (sysctl.d(5)) reads *.conf from these
 * directories; a file in an earlier directory hides a file with the same name in a later one; all
 * files are then applied in lexicographic order of their names, so for a key the last file (and
 * within it the last line) wins. procps' `sysctl --system` reads /etc/sysctl.conf after them.
 */
export const SYSCTL_DIRS = [
  "/etc/sysctl.d",
  "/run/sysctl.d",
  "/usr/local/lib/sysctl.d",
  "/usr/lib/sysctl.d",
  "/lib/sysctl.d",
] as const;
export const SYSCTL_CONF = "/etc/sysctl.conf";

export interface SysctlFile {
  path: string;
  content: string;
}

export interface BootSetting {
  path: string;
  line: number;
  value: string;
}

/** Pure: the winning setting of every key, by systemd's rules, then /etc/sysctl.conf. */
export function bootSettings(files: readonly SysctlFile[]): Map<string, BootSetting> {
  const byName = new Map<string, SysctlFile>();
  for (const dir of SYSCTL_DIRS) {
    for (const f of files.filter((x) => dirOf(x.path) === dir)) {
      const name = f.path.slice(dir.length + 1);
      if (!byName.has(name)) byName.set(name, f);
    }
  }
  const ordered = [...byName.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, f]) => f);
  const conf = files.find((f) => f.path === SYSCTL_CONF);
  if (conf) ordered.push(conf);
  const winners = new Map<string, BootSetting>();
  for (const f of ordered) {
    f.content.split("\n").forEach((raw, i) => {
      const setting = parseLine(raw);
      if (setting) winners.set(setting.key, { path: f.path, line: i + 1, value: setting.value });
    });
  }
  return winners;
}

function dirOf(path: string): string {
  return path.slice(0, path.lastIndexOf("/"));
}

/** `key = value`, `key=value`, `-key = value` (errors ignored), `net/ipv4/x = 1`; comments are # and ;. */
export function parseLine(raw: string): { key: string; value: string } | null {
  const line = raw.trim();
  if (line === "" || line.startsWith("#") || line.startsWith(";")) return null;
  const eq = line.indexOf("=");
  if (eq <= 0) return null;
  const key = line.slice(0, eq).trim().replace(/^-/, "").replace(/\//g, ".");
  return { key, value: line.slice(eq + 1).trim() };
}

export const sysctlBootProbe = defineProbe({
  name: "sysctl-boot",
  // `F<TAB>path` for each readable file, then one awk for all their lines: `L<TAB>path<TAB>n<TAB>line`
  // (one process, not one per file). Globs that match nothing stay literal and are skipped.
  // A directory seen under another name (/lib is /usr/lib on merged-/usr systems) is read once:
  // its files are all shadowed by the same names in the first one.
  script: () =>
    [
      "seen=; files=",
      `for d in ${SYSCTL_DIRS.join(" ")}; do`,
      '  dup=no; for s in $seen; do [ "$d" -ef "$s" ] && dup=yes; done',
      '  [ $dup = yes ] || { seen="$seen $d"; files="$files $d/*.conf"; }',
      "done",
      "set --",
      `for f in $files ${SYSCTL_CONF}; do`,
      '  if [ -f "$f" ] && [ -r "$f" ]; then printf \'F\\t%s\\n\' "$f"; set -- "$@" "$f"; fi',
      "done",
      // Only lines with a `=` can set a key; the rest (comments, mostly) stays on the host.
      `if [ $# -gt 0 ]; then awk 'index($0, "=") { printf "L\\t%s\\t%d\\t%s\\n", FILENAME, FNR, $0 }' "$@"; fi`,
    ].join("\n"),
  /** key → `path:line` of the line that sets it last at boot. */
  parse(raw): Record<string, string> {
    return bootWinners(parseBootListing(raw));
  },
});

/** key → `path:line` of the setting that wins at boot across these files. */
export function bootWinners(files: SysctlFile[]): Record<string, string> {
  const winners: Record<string, string> = {};
  for (const [key, s] of bootSettings(files)) winners[key] = `${s.path}:${s.line}`;
  return winners;
}

/** Pure: the files of the probe's listing, each line back at its number. */
export function parseBootListing(raw: string): SysctlFile[] {
  const lines = new Map<string, string[]>();
  const lineRecords: string[] = [];
  for (const line of raw.split("\n")) {
    if (line === "") continue;
    if (line.startsWith("F\t")) lines.set(line.slice(2), []);
    else if (line.startsWith("L\t")) lineRecords.push(line.slice(2));
    else throw new ProbeParseError(`unexpected sysctl-boot line: ${JSON.stringify(line.slice(0, 80))}`);
  }
  // Longest path first, so a path that starts like another one is matched whole.
  const paths = [...lines.keys()].sort((a, b) => b.length - a.length);
  for (const rec of lineRecords) {
    const path = paths.find((p) => rec.startsWith(`${p}\t`));
    const m = path === undefined ? null : /^(\d+)\t([\s\S]*)$/.exec(rec.slice(path.length + 1));
    if (!path || !m) throw new ProbeParseError(`unexpected sysctl-boot line: ${JSON.stringify(rec.slice(0, 80))}`);
    lines.get(path)![Number(m[1]) - 1] = m[2]!;
  }
  return [...lines].map(([path, l]) => ({ path, content: Array.from(l, (x) => x ?? "").join("\n") }));
}
