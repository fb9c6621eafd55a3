import { defineProbe, ProbeParseError } from "./probe.js";

/**
 * Which file sets each sysctl key at boot. systemd-sysctl (sysctl.d(5)) reads *.conf from these
 * directories; a file in an earlier directory hides a file with the same name in a later one; all
 * files are then applied in lexicographic order of their names, so for a key the last file (and
 * within it the last line) wins. procps' `sysctl --system` reads /etc/sysctl.conf after them.
 */
export const SYSCTL_DIRS = ["/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d"] as const;
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
  // One line per file: path, a tab, the content in base64. Globs that match nothing stay literal.
  command: () =>
    [
      `for f in ${SYSCTL_DIRS.map((d) => `${d}/*.conf`).join(" ")} ${SYSCTL_CONF}; do`,
      '  [ -f "$f" ] && [ -r "$f" ] || continue',
      '  printf \'%s\\t\' "$f"; base64 < "$f" | tr -d \'\\n\'; echo',
      "done",
    ].join("\n"),
  parse(raw) {
    const files: SysctlFile[] = [];
    for (const line of raw.split("\n")) {
      if (line === "") continue;
      const tab = line.indexOf("\t");
      if (tab <= 0) throw new ProbeParseError(`unexpected sysctl-boot line: ${JSON.stringify(line.slice(0, 80))}`);
      files.push({ path: line.slice(0, tab), content: Buffer.from(line.slice(tab + 1), "base64").toString("utf8") });
    }
    const fields: Record<string, string> = {};
    for (const [key, s] of bootSettings(files)) fields[key] = `${s.path}:${s.line}`;
    return fields;
  },
});
