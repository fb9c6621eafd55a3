import { createHash } from "node:crypto";
import { posix } from "node:path";
import { defineProbe, ProbeParseError } from "./probe.js";

/** In every file of the secondary-source-ips role, so the probe finds them all. */
const MANAGED_NAME = "60-provision-secondary-ips";
export const NETWORKD_DROPIN_NAME = `${MANAGED_NAME}.conf`;
/** Run by run-parts after each `iface` stanza is up. */
export const IFUPDOWN_HOOK = `/etc/network/if-up.d/${MANAGED_NAME}`;
/** Earlier versions' stanza, which ran before the interface's own (removed when found). */
export const IFUPDOWN_DROPIN = `/etc/network/interfaces.d/${MANAGED_NAME}`;
export const IFUPDOWN_MAIN = "/etc/network/interfaces";
/** What the role added live, where: removable even when not persisted. In no .d directory, so nothing reads it as configuration. */
export const STATE_FILE = "/etc/provision/secondary-source-ips.state";

const NETWORKD_DROPIN_PATH = new RegExp(`^/etc/systemd/network/[^/]+\\.network\\.d/${MANAGED_NAME}\\.conf$`);

/** The role never removes anything else. */
export function isOwnFileName(path: string): boolean {
  return [STATE_FILE, IFUPDOWN_HOOK, IFUPDOWN_DROPIN].includes(path) || NETWORKD_DROPIN_PATH.test(path);
}

/** Highest priority first: a file in /etc shadows one of the same name below. */
const NETWORKD_DIRS =
  "/etc/systemd/network /run/systemd/network /usr/local/lib/systemd/network /usr/lib/systemd/network /lib/systemd/network";
const NETPLAN_GLOBS =
  "/etc/netplan/*.yaml /etc/netplan/*.yml /run/netplan/*.yaml /lib/netplan/*.yaml /usr/lib/netplan/*.yaml";

// One line per record: KIND <path> <base64 content, or - when not a readable regular file>. A path
// of plain characters is printed as it is (a base64 path never starts with "/"): three processes
// fewer per file.
const COMMAND = `
if base64 -w0 </dev/null >/dev/null 2>&1; then enc() { base64 -w0; }; else enc() { base64 | tr -d '\\n'; }; fi
name() { case "$1" in /*[!A-Za-z0-9._/@:+-]*) printf '%s' "$1" | enc;; /*) printf '%s' "$1";; *) printf '%s' "$1" | enc;; esac; }
emit() {
  printf '%s ' "$1"; name "$2"; printf ' '
  if [ -f "$2" ] && [ -r "$2" ]; then enc < "$2"; else printf -- '-'; fi
  echo
}
emit_text() { printf '%s ' "$1"; name "$2"; printf ' '; printf '%s' "$3" | enc; echo; }
seen=
for d in ${NETWORKD_DIRS}; do
  # On merged-/usr systems /lib is /usr/lib: its files would all be shadowed, so it is read once.
  dup=no; for s in $seen; do [ "$d" -ef "$s" ] && dup=yes; done
  [ $dup = yes ] && continue; seen="$seen $d"
  for f in "$d"/*.network; do { [ -e "$f" ] || [ -L "$f" ]; } && emit networkd "$f"; done
done
for f in /etc/systemd/network/*.network.d/${NETWORKD_DROPIN_NAME} ${IFUPDOWN_HOOK} ${IFUPDOWN_DROPIN} ${STATE_FILE}; do
  [ -e "$f" ] || continue
  emit managed "$f"
  emit_text mode "$f" "$(stat -L -c %a "$f" 2>/dev/null)"
done
[ -e ${IFUPDOWN_MAIN} ] && emit ifupdown-main ${IFUPDOWN_MAIN}
for f in /etc/network/interfaces.d/*; do [ -f "$f" ] && emit ifupdown-file "$f"; done
command -v ifup >/dev/null 2>&1 && emit_text flag ifup yes
for f in ${NETPLAN_GLOBS}; do [ -f "$f" ] && emit netplan "$f"; done
for f in /usr/lib/systemd/systemd-networkd /lib/systemd/systemd-networkd; do [ -x "$f" ] && { emit_text flag networkd-daemon yes; break; }; done
if [ -d /etc/NetworkManager ] && command -v nmcli >/dev/null 2>&1; then
  emit_text flag networkmanager yes
  t=; command -v timeout >/dev/null 2>&1 && t="timeout 5"
  devices=$($t nmcli -t -f DEVICE,STATE device status 2>/dev/null)
  emit_text nm-devices - "$devices"
  # Only the interface-name lines: keyfiles also hold secrets (Wi-Fi keys, VPN passwords).
  emit_text nm-profiles - "$(grep -h '^interface-name=' /etc/NetworkManager/system-connections/* /run/NetworkManager/system-connections/* 2>/dev/null)"
fi
exit 0
`;

/** content and raw are null when not a readable regular file (e.g. a symlink to /dev/null). */
interface Entry {
  kind: string;
  path: string;
  content: string | null;
  raw: Buffer | null;
}

function parseEntries(raw: string): Entry[] {
  return raw
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => {
      const parts = line.split(" ");
      if (parts.length !== 3 || !/^[a-z-]+$/.test(parts[0]!))
        throw new ProbeParseError(`unexpected line from the network-stack probe: ${line.slice(0, 120)}`);
      const [kind, path64, content64] = parts as [string, string, string];
      const bytes = content64 === "-" ? null : Buffer.from(content64, "base64");
      const path = path64.startsWith("/") ? path64 : Buffer.from(path64, "base64").toString("utf8");
      return { kind, path, content: bytes?.toString("utf8") ?? null, raw: bytes };
    });
}

/** names: [Match] Name= globs (`!` kept); other: the other [Match] keys (Type=, MACAddress=, …), sorted. */
export interface NetworkFile {
  path: string;
  names: string[];
  other: string[];
}

/** content "" and sha256 "unreadable" when not a readable regular file; mode as stat prints it (755). */
export interface ManagedFileState {
  content: string;
  sha256: string;
  mode: string | null;
}

/** From configuration files only: a daemon may not run while provision looks (containers, rescue boots, the test fleet). */
export interface NetworkStack {
  /** files in networkd's order: by file name across directories; an empty or /dev/null file masks its name. */
  networkd: { files: NetworkFile[]; daemon: boolean };
  managed: { paths: string[]; files: Record<string, ManagedFileState> };
  ifupdown: {
    main: boolean;
    /** IFUPDOWN_MAIN reads IFUPDOWN_DROPIN (`source` or `source-directory`). */
    sourcesDropin: boolean;
    /** Named by iface/auto/allow- stanzas outside the role's file. */
    ifaces: string[];
    /** Interface → its `iface` stanzas' families (inet, inet6). */
    families: Record<string, string[]>;
    ifup: boolean;
  };
  netplan: Record<string, string>;
  /** ifaces: devices NetworkManager manages or its profiles name. */
  networkManager: { present: boolean; ifaces: string[] };
}

export const networkStackProbe = defineProbe<NetworkStack>({
  name: "network-stack",
  script: () => COMMAND.trim(),
  parse(raw) {
    const entries = parseEntries(raw);
    const ofKind = (kind: string) => entries.filter((e) => e.kind === kind);
    const flags = new Set(ofKind("flag").map((e) => e.path));
    const managed = ofKind("managed").filter((e) => isOwnFileName(e.path));
    return {
      networkd: { files: networkdFiles(ofKind("networkd")), daemon: flags.has("networkd-daemon") },
      managed: {
        paths: managed.map((e) => e.path),
        files: Object.fromEntries(managed.map((e) => [e.path, managedFile(e, entries)])),
      },
      ifupdown: ifupdownOf(entries, flags.has("ifup")),
      netplan: Object.fromEntries(ofKind("netplan").flatMap((e) => (e.content !== null ? [[e.path, e.content]] : []))),
      networkManager: networkManagerOf(entries, flags.has("networkmanager")),
    };
  },
});

function networkdFiles(entries: Entry[]): NetworkFile[] {
  const byName = new Map<string, Entry>();
  // Directories come highest priority first: the first file of a name wins.
  for (const e of entries) if (!byName.has(posix.basename(e.path))) byName.set(posix.basename(e.path), e);
  return [...byName.entries()]
    .filter(([, e]) => e.content !== null && e.content.trim() !== "")
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, e]) => ({ path: e.path, ...parseMatchSection(e.content!) }));
}

/** An empty Name= resets the list. */
export function parseMatchSection(content: string): { names: string[]; other: string[] } {
  let section = "";
  let names: string[] = [];
  const other = new Set<string>();
  // Comment lines (# or ;) match neither pattern.
  for (const line of content.split("\n").map((l) => l.trim())) {
    const header = /^\[(.+)\]$/.exec(line);
    const kv = /^([A-Za-z]+)\s*=\s*(.*)$/.exec(line);
    if (header) section = header[1]!.trim();
    else if (section !== "Match" || !kv) continue;
    else if (kv[1] === "Name") {
      const globs = kv[2]!.split(/\s+/).filter(Boolean);
      names = globs.length === 0 ? [] : [...names, ...globs];
    } else other.add(kv[1]!);
  }
  return { names, other: [...other].sort() };
}

/** systemd's Name= test: a list starting with `!` is inverted. */
export function matchesNameList(names: string[], iface: string): boolean {
  if (names.length === 0) return true;
  const inverted = names[0]!.startsWith("!");
  const globs = inverted ? [names[0]!.slice(1), ...names.slice(1)].filter(Boolean) : names;
  const hit = globs.some((g) => fnmatch(g, iface));
  return inverted ? !hit : hit;
}

/** Shell-style glob (`*`, `?`, `[...]`, `[!...]`); `*` does not cross `/`. */
export function fnmatch(glob: string, text: string): boolean {
  let re = "^";
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i]!;
    if (ch === "*") re += "[^/]*";
    else if (ch === "?") re += "[^/]";
    else if (ch === "[") {
      const end = glob.indexOf("]", i + 2);
      if (end === -1) {
        re += "\\[";
        continue;
      }
      let body = glob.slice(i + 1, end);
      const negate = body.startsWith("!") || body.startsWith("^");
      if (negate) body = body.slice(1);
      re += `[${negate ? "^" : ""}${body.replace(/[\\\]]/g, "\\$&")}]`;
      i = end;
    } else re += ch.replace(/[.+^${}()|\\]/g, "\\$&");
  }
  return new RegExp(`${re}$`).test(text);
}

function managedFile(e: Entry, entries: Entry[]): ManagedFileState {
  const mode = entries.find((m) => m.kind === "mode" && m.path === e.path)?.content?.trim();
  return {
    content: e.content ?? "",
    sha256: e.raw ? createHash("sha256").update(e.raw).digest("hex") : "unreadable",
    mode: mode || null,
  };
}

function ifupdownOf(entries: Entry[], ifup: boolean): NetworkStack["ifupdown"] {
  const main = entries.find((e) => e.kind === "ifupdown-main");
  const others = entries.filter((e) => e.kind === "ifupdown-file" && e.path !== IFUPDOWN_DROPIN && e.content !== null);
  const parsedMain = parseInterfaces(main?.content ?? "");
  const parsed = [parsedMain, ...others.map((e) => parseInterfaces(e.content!))];
  const families = new Map<string, Set<string>>();
  for (const s of parsed.flatMap((p) => p.stanzas))
    families.set(s.iface, (families.get(s.iface) ?? new Set()).add(s.family));
  return {
    main: main !== undefined,
    sourcesDropin: sourcesDropin(parsedMain),
    ifaces: [...new Set(parsed.flatMap((p) => p.ifaces))],
    families: Object.fromEntries([...families].map(([iface, set]) => [iface, [...set]])),
    ifup,
  };
}

/** What matters here in an interfaces(5) file. */
export function parseInterfaces(content: string) {
  const ifaces: string[] = [];
  const stanzas: Array<{ iface: string; family: string }> = [];
  const sources: string[] = [];
  const sourceDirs: string[] = [];
  const resolve = (p: string) => (p.startsWith("/") ? p : posix.join("/etc/network", p));
  for (const line of content.replace(/\\\n/g, " ").split("\n")) {
    const [keyword, ...rest] = line.trim().split(/\s+/);
    if (!keyword || keyword.startsWith("#")) continue;
    if (keyword === "iface" && rest[0]) {
      ifaces.push(rest[0]);
      if (rest[1]) stanzas.push({ iface: rest[0], family: rest[1] });
    } else if (keyword === "auto" || keyword.startsWith("allow-")) ifaces.push(...rest);
    else if (keyword === "source") sources.push(...rest.map(resolve));
    else if (keyword === "source-directory" || keyword === "source-dir") sourceDirs.push(...rest.map(resolve));
  }
  return { ifaces, stanzas, sources, sourceDirs };
}

function sourcesDropin(main: { sources: string[]; sourceDirs: string[] }): boolean {
  const dir = posix.dirname(IFUPDOWN_DROPIN);
  return (
    main.sources.some((glob) => fnmatch(glob, IFUPDOWN_DROPIN)) ||
    main.sourceDirs.some((d) => posix.normalize(d).replace(/\/$/, "") === dir)
  );
}

function networkManagerOf(entries: Entry[], present: boolean): NetworkStack["networkManager"] {
  const text = (kind: string) => entries.find((e) => e.kind === kind)?.content ?? "";
  // `nmcli -t` escapes ':' in values as '\:'; device names never contain one.
  const managed = text("nm-devices")
    .split("\n")
    .map((l) => l.split(":"))
    .filter(([dev, state]) => dev && state && !state.startsWith("unmanaged"))
    .map(([dev]) => dev!);
  const profiles = text("nm-profiles")
    .split("\n")
    .map((l) => /^interface-name=(.+)$/.exec(l.trim())?.[1])
    .filter((name) => name !== undefined);
  return { present, ifaces: [...new Set([...managed, ...profiles])] };
}
