import { createHash } from "node:crypto";
import { posix } from "node:path";
import { defineProbe, ProbeParseError } from "./probe.js";

/** The name every file of the secondary-source-ips role carries, so the probe can find them all. */
export const MANAGED_NAME = "60-provision-secondary-ips";
export const NETWORKD_DROPIN_NAME = `${MANAGED_NAME}.conf`;
/** ifupdown hook (run-parts after each `iface` stanza is up): where ifupdown hosts persist the addresses. */
export const IFUPDOWN_HOOK = `/etc/network/if-up.d/${MANAGED_NAME}`;
/** Where earlier versions persisted them for ifupdown: a stanza that ran before the interface's own (removed when found). */
export const IFUPDOWN_DROPIN = `/etc/network/interfaces.d/${MANAGED_NAME}`;
export const IFUPDOWN_MAIN = "/etc/network/interfaces";
/**
 * The addresses the role added live and on which interface, so it can remove them later whether or
 * not they were persisted. Under /etc like every other file provision writes (kept and restored
 * with the configuration it describes), and in no .d directory, so nothing reads it as configuration.
 */
export const STATE_FILE = "/etc/provision/secondary-source-ips.state";

const NETWORKD_DROPIN_PATH = new RegExp(
  `^/etc/systemd/network/[^/]+\\.network\\.d/${NETWORKD_DROPIN_NAME.replace(/[.]/g, "\\.")}$`,
);

/** True only for a path the role itself writes: it never removes anything else. */
export function isOwnFileName(path: string): boolean {
  return path === STATE_FILE || path === IFUPDOWN_HOOK || path === IFUPDOWN_DROPIN || NETWORKD_DROPIN_PATH.test(path);
}

/** networkd's search path, highest priority first: a file in /etc shadows one of the same name below. */
export const NETWORKD_DIRS = [
  "/etc/systemd/network",
  "/run/systemd/network",
  "/usr/local/lib/systemd/network",
  "/usr/lib/systemd/network",
  "/lib/systemd/network",
];
const NETPLAN_GLOBS = [
  "/etc/netplan/*.yaml",
  "/etc/netplan/*.yml",
  "/run/netplan/*.yaml",
  "/lib/netplan/*.yaml",
  "/usr/lib/netplan/*.yaml",
];

// Each record is one line: KIND <path> <base64 content, or - when not a readable regular file>.
// The path is base64 too, unless it is an absolute path of plain characters: then it is printed as
// it is (a base64 path never starts with "/"), which saves three processes per file.
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
for d in ${NETWORKD_DIRS.join(" ")}; do
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
for f in ${NETPLAN_GLOBS.join(" ")}; do [ -f "$f" ] && emit netplan "$f"; done
for f in /usr/lib/systemd/systemd-networkd /lib/systemd/systemd-networkd; do [ -x "$f" ] && { emit_text flag networkd-daemon yes; break; }; done
if [ -d /etc/NetworkManager ] && command -v nmcli >/dev/null 2>&1; then
  emit_text flag networkmanager yes
  if command -v timeout >/dev/null 2>&1; then devices=$(timeout 5 nmcli -t -f DEVICE,STATE device status 2>/dev/null); else devices=$(nmcli -t -f DEVICE,STATE device status 2>/dev/null); fi
  emit_text nm-devices - "$devices"
  # Only the interface-name lines: keyfiles also hold secrets (Wi-Fi keys, VPN passwords).
  emit_text nm-profiles - "$(grep -h '^interface-name=' /etc/NetworkManager/system-connections/* /run/NetworkManager/system-connections/* 2>/dev/null)"
fi
exit 0
`;

interface Entry {
  kind: string;
  path: string;
  /** null when the path is not a readable regular file (e.g. a symlink to /dev/null). */
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

/** A .network file networkd uses, with the [Match] keys that decide which links it configures. */
export interface NetworkFile {
  path: string;
  /** [Match] Name= globs, `!` kept. */
  names: string[];
  /** The other [Match] keys it has (Type=, MACAddress=, …), sorted. */
  other: string[];
}

/** One of the role's own files as found on the host. */
export interface ManagedFileState {
  /** Its text; "" when it is not a readable regular file (sha256 is then "unreadable"). */
  content: string;
  /** sha256 of its raw bytes, or "unreadable". */
  sha256: string;
  /** Octal permission bits as stat prints them (e.g. 755); null when unknown. */
  mode: string | null;
}

/**
 * Which network stack's configuration exists on a host, read from configuration files only (a
 * daemon may not run while provision looks: containers, rescue boots, this project's fleet).
 */
export interface NetworkStack {
  networkd: {
    /**
     * The .network files networkd uses, in its order: by file name across directories; a name in a
     * higher directory shadows the same name below; an empty or /dev/null file masks it.
     */
    files: NetworkFile[];
    /** systemd-networkd is installed. */
    daemon: boolean;
  };
  /** The role's own files on the host (only its exact names, see isOwnFileName). */
  managed: { paths: string[]; files: Record<string, ManagedFileState> };
  ifupdown: {
    /** /etc/network/interfaces exists. */
    main: boolean;
    /** /etc/network/interfaces reads IFUPDOWN_DROPIN (a `source` or `source-directory` line). */
    sourcesDropin: boolean;
    /** Interfaces named by iface/auto/allow- stanzas outside the role's own file. */
    ifaces: string[];
    /** Interface → the address families of its `iface` stanzas (inet, inet6). */
    families: Record<string, string[]>;
    /** ifup is installed. */
    ifup: boolean;
  };
  /** netplan files by path → their text. */
  netplan: Record<string, string>;
  networkManager: {
    present: boolean;
    /** Devices NetworkManager manages or its profiles name. */
    ifaces: string[];
  };
}

export const networkStackProbe = defineProbe<NetworkStack>({
  name: "network-stack",
  script: () => COMMAND.trim(),
  parse(raw) {
    const entries = parseEntries(raw);
    const flags = new Set(entries.filter((e) => e.kind === "flag").map((e) => e.path));
    const managed = entries.filter((e) => e.kind === "managed" && isOwnFileName(e.path));
    return {
      networkd: {
        files: networkdFiles(entries.filter((e) => e.kind === "networkd")),
        daemon: flags.has("networkd-daemon"),
      },
      managed: {
        paths: managed.map((e) => e.path),
        files: Object.fromEntries(managed.map((e) => [e.path, managedFile(e, entries)])),
      },
      ifupdown: ifupdownOf(entries, flags.has("ifup")),
      netplan: Object.fromEntries(
        entries.flatMap((e) => (e.kind === "netplan" && e.content !== null ? [[e.path, e.content]] : [])),
      ),
      networkManager: networkManagerOf(entries, flags.has("networkmanager")),
    };
  },
});

function networkdFiles(entries: Entry[]): NetworkFile[] {
  const byName = new Map<string, Entry>();
  // The probe lists directories highest priority first; the first file of a name wins.
  for (const e of entries) if (!byName.has(posix.basename(e.path))) byName.set(posix.basename(e.path), e);
  return [...byName.entries()]
    .filter(([, e]) => e.content !== null && e.content.trim() !== "")
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, e]) => ({ path: e.path, ...parseMatchSection(e.content!) }));
}

/** The [Match] section of a .network file: Name= globs (an empty Name= resets the list) and the other keys present. */
export function parseMatchSection(content: string): { names: string[]; other: string[] } {
  let section = "";
  let names: string[] = [];
  const other = new Set<string>();
  for (const rawLine of content.split("\n")) {
    const line = rawLine.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1]!.trim();
      continue;
    }
    if (section !== "Match") continue;
    const kv = /^([A-Za-z]+)\s*=\s*(.*)$/.exec(line);
    if (!kv) continue;
    if (kv[1] === "Name") {
      const globs = kv[2]!.split(/\s+/).filter(Boolean);
      names = globs.length === 0 ? [] : [...names, ...globs];
    } else {
      other.add(kv[1]!);
    }
  }
  return { names, other: [...other].sort() };
}

/** systemd's Name= test: any glob matches; a list starting with `!` is inverted. */
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
  const parsedMain = main?.content
    ? parseInterfaces(main.content)
    : { ifaces: [], stanzas: [], sources: [], sourceDirs: [] };
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

/** The stanzas of an interfaces(5) file that matter here: interface names, `iface` families and `source` lines. */
export function parseInterfaces(content: string): {
  ifaces: string[];
  stanzas: Array<{ iface: string; family: string }>;
  sources: string[];
  sourceDirs: string[];
} {
  const ifaces: string[] = [];
  const stanzas: Array<{ iface: string; family: string }> = [];
  const sources: string[] = [];
  const sourceDirs: string[] = [];
  const resolve = (p: string) => (p.startsWith("/") ? p : posix.join("/etc/network", p));
  for (const line of content.replace(/\\\n/g, " ").split("\n")) {
    const words = line.trim().split(/\s+/);
    const [keyword, ...rest] = words;
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
    .filter((x): x is string => Boolean(x));
  return { present, ifaces: [...new Set([...managed, ...profiles])] };
}
