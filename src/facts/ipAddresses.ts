import { defineProbe, ProbeParseError } from "./probe.js";

/** An interface address in canonical form: what `ip -j addr` prints (RFC 5952 for IPv6). */
export interface Cidr {
  family: 4 | 6;
  address: string;
  prefix: number;
  /** `address/prefix`, e.g. 198.18.5.10/24 or 2001:db8::10/64. */
  text: string;
}

/** Parses `ADDRESS/PREFIX` strictly (no leading zeros, no IPv4-in-IPv6) into canonical form. */
export function parseCidr(input: string): Cidr | { error: string } {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(input.trim());
  if (!m) return { error: "is not ADDRESS/PREFIX" };
  const ip = parseIp(m[1]!);
  if ("error" in ip) return ip;
  const prefix = Number(m[2]);
  const max = ip.family === 4 ? 32 : 128;
  if (!/^(0|[1-9]\d*)$/.test(m[2]!) || prefix < 1 || prefix > max)
    return { error: `has prefix /${m[2]}; an IPv${ip.family} prefix is 1 to ${max}` };
  return { family: ip.family, address: ip.address, prefix, text: `${ip.address}/${prefix}` };
}

/** Canonical text of an IPv4 or IPv6 address; an IPv4-mapped IPv6 address (::ffff:a.b.c.d) becomes a.b.c.d, a zone (%eth0) is dropped. */
export function canonicalIp(input: string): string | null {
  const text = input.trim().replace(/%.*$/, "");
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(text);
  const ip = parseIp(mapped ? mapped[1]! : text);
  return "error" in ip ? null : ip.address;
}

type ParsedIp = { family: 4 | 6; address: string; bytes: number[] } | { error: string };

function parseIp(text: string): ParsedIp {
  if (text.includes(":")) return parseIpv6(text);
  return parseIpv4(text);
}

function parseIpv4(text: string): ParsedIp {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255)) {
    return { error: "is not an IPv4 address (four numbers 0-255 without leading zeros) or an IPv6 address" };
  }
  const bytes = parts.map(Number);
  return { family: 4, address: bytes.join("."), bytes };
}

function parseIpv6(input: string): ParsedIp {
  const bad = { error: "is not an IPv6 address (eight groups of 1-4 hex digits, at most one ::)" };
  const text = withoutDottedTail(input);
  if (text === null) return bad;
  const halves = text.split("::");
  if (halves.length > 2) return bad;
  const groupsOf = (s: string) => (s === "" ? [] : s.split(":"));
  const head = groupsOf(halves[0]!);
  const tail = halves.length === 2 ? groupsOf(halves[1]!) : [];
  if (![...head, ...tail].every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return bad;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return bad;
  const words = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill("0"), ...tail].map((g) =>
    parseInt(g, 16),
  );
  return { family: 6, address: formatIpv6(words), bytes: words.flatMap((w) => [w >> 8, w & 0xff]) };
}

/** `::ffff:1.2.3.4` → `::ffff:102:304`: a trailing dotted IPv4 part as two hex groups (null when it is not an IPv4 address). */
function withoutDottedTail(text: string): string | null {
  const m = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (!m) return text;
  const v4 = parseIpv4(m[2]!);
  if ("error" in v4) return null;
  const [a, b, c, d] = v4.bytes as [number, number, number, number];
  return `${m[1]}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
}

/** RFC 5952: lowercase, no leading zeros, the longest run (first on a tie) of 2+ zero groups as `::`. */
function formatIpv6(words: number[]): string {
  let best = { at: -1, len: 0 };
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > best.len) best = { at: i, len: j - i };
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (best.len < 2) return hex.join(":");
  return `${hex.slice(0, best.at).join(":")}::${hex.slice(best.at + best.len).join(":")}`;
}

/**
 * Why an address can't be an extra source address (null when it can): special ranges, and the
 * network or broadcast address of its own prefix.
 */
export function unusableReason(c: Cidr): string | null {
  const ip = parseIp(c.address);
  if ("error" in ip) return ip.error;
  const b = ip.bytes;
  if (c.family === 4) {
    if (b[0] === 0) return 'is in 0.0.0.0/8 ("this network"), which is never a source address';
    if (b[0] === 127) return "is a loopback address (127.0.0.0/8): traffic from it never leaves the host";
    if (b[0] === 169 && b[1] === 254)
      return "is link-local (169.254.0.0/16): it can't reach anything beyond the local link";
    if (b[0]! >= 224) return "is multicast or reserved (224.0.0.0 and above), never a source address";
    if (c.prefix <= 30) {
      const host = hostBits(b, c.prefix);
      if (host.every((bit) => bit === 0)) return `is the network address of ${c.address}/${c.prefix}`;
      if (host.every((bit) => bit === 1)) return `is the broadcast address of ${c.address}/${c.prefix}`;
    }
    return null;
  }
  if (b.slice(0, 10).every((x) => x === 0) && ((b[10] === 0 && b[11] === 0) || (b[10] === 0xff && b[11] === 0xff))) {
    return "is unspecified, loopback, IPv4-compatible or IPv4-mapped (::/96, ::ffff:0:0/96), never an interface address";
  }
  if (b[0] === 0xfe && (b[1]! & 0xc0) === 0x80)
    return "is link-local (fe80::/10): it can't reach anything beyond the local link";
  if (b[0] === 0xff) return "is multicast (ff00::/8), never a source address";
  if (c.prefix < 127 && hostBits(b, c.prefix).every((bit) => bit === 0))
    return `is the subnet-router anycast address of ${c.address}/${c.prefix}`;
  return null;
}

function hostBits(bytes: number[], prefix: number): number[] {
  const bits = bytes.flatMap((x) => Array.from({ length: 8 }, (_, i) => (x >> (7 - i)) & 1));
  return bits.slice(prefix);
}

/** Link-local addresses never serve as a source towards another network. */
export function isLinkLocal(c: Cidr): boolean {
  return c.family === 4 ? c.address.startsWith("169.254.") : /^fe[89ab]/i.test(c.address);
}

/** Separates `ip -j addr show` from the promote_secondaries lines in the probe's output. */
const PROMOTE_MARKER = "# promote_secondaries";

/** An address as the kernel holds it, with the flags that decide what deleting or using it does. */
export interface LiveAddress extends Cidr {
  /** As `ip` prints it: global, link, host (empty when it printed none). */
  scope: string;
  /** IPv4: not the first address of its subnet on the interface; deleting the first (primary) takes these along unless promote_secondaries is on. */
  secondary: boolean;
  /** IPv6 duplicate address detection still running (the kernel also keeps a failed one tentative; that one counts as dadfailed only). */
  tentative: boolean;
  /** IPv6 duplicate address detection found another node using it: the kernel never sends from it. */
  dadfailed: boolean;
}

/** One link of `ip -j addr show`: its name and its addresses, in `ip` order. */
export interface IpLink {
  name: string;
  addresses: LiveAddress[];
}

/** One interface in the ip-addresses probe's answer. */
export interface IpInterface {
  /** Its addresses with their flags, in `ip` order. */
  addresses: LiveAddress[];
  /** Every address as ADDRESS/PREFIX. */
  cidrs: string[];
  /** Those duplicate address detection did not reject, as ADDRESS/PREFIX (tentative ones included: usable within a second or two). */
  usable: string[];
  /**
   * Whether deleting a primary IPv4 address promotes a secondary (the interface's setting or `all`'s
   * is 1) or deletes them all; null when unreadable.
   */
  promoteSecondaries: boolean | null;
}

/** The ip-addresses probe's answer. */
export interface IpAddresses {
  /** Interface names, in `ip` order. */
  names: string[];
  interfaces: Record<string, IpInterface>;
  /** Every address of the host, without prefix. */
  locals: string[];
}

/**
 * Every interface and its addresses, from `ip -j addr show` (iproute2 4.14+), and
 * /proc/sys/net/ipv4/conf/<iface>/promote_secondaries.
 */
export const ipAddressesProbe = defineProbe<IpAddresses>({
  name: "ip-addresses",
  script: () =>
    [
      `command -v ip >/dev/null 2>&1 || { echo 'ip (iproute2) is not installed; install iproute2' >&2; exit 1; }`,
      `ip -j addr show`,
      `echo`,
      `echo '${PROMOTE_MARKER}'`,
      `for f in /proc/sys/net/ipv4/conf/*/promote_secondaries; do [ -r "$f" ] || continue; d=\${f%/promote_secondaries}; printf '%s %s\\n' "\${d##*/}" "$(cat "$f")"; done`,
    ].join("\n"),
  parse(raw) {
    const at = raw.indexOf(`\n${PROMOTE_MARKER}`);
    const links = parseIpAddr(at === -1 ? raw : raw.slice(0, at));
    const promote =
      at === -1 ? new Map<string, boolean>() : parsePromoteLines(raw.slice(at + PROMOTE_MARKER.length + 1));
    const all = promote.get("all") === true;
    const texts = (addrs: LiveAddress[]) => addrs.map((a) => a.text);
    return {
      names: links.map((l) => l.name),
      interfaces: Object.fromEntries(
        links.map((l): [string, IpInterface] => {
          const own = promote.get(l.name);
          const promoteSecondaries = own === undefined ? null : own || all;
          return [
            l.name,
            {
              addresses: l.addresses,
              cidrs: texts(l.addresses),
              usable: texts(l.addresses.filter((a) => !a.dadfailed)),
              promoteSecondaries,
            },
          ];
        }),
      ),
      locals: links.flatMap((l) => l.addresses.map((a) => a.address)),
    };
  },
});

interface IpJsonLink {
  ifname?: unknown;
  addr_info?: unknown;
}

interface IpJsonAddr {
  local?: unknown;
  prefixlen?: unknown;
  scope?: unknown;
  secondary?: unknown;
  tentative?: unknown;
  dadfailed?: unknown;
}

/**
 * Pure: the links and addresses in the output of `ip -j addr show` (iproute2 4.14+), in `ip` order;
 * the empty objects iproute2 prints for links it filtered out are skipped. Throws ProbeParseError
 * when the output is not a JSON array or lists an address that is not one.
 */
export function parseIpAddr(json: string): IpLink[] {
  let data: unknown;
  try {
    data = JSON.parse(json);
  } catch {
    throw new ProbeParseError(
      `\`ip -j addr show\` did not print JSON (iproute2 older than 4.14?): ${json.slice(0, 200)}`,
    );
  }
  if (!Array.isArray(data)) throw new ProbeParseError("`ip -j addr show` did not print a JSON array");
  return (data as IpJsonLink[]).flatMap((link) =>
    typeof link?.ifname === "string" ? [{ name: link.ifname, addresses: addressesOf(link) }] : [],
  );
}

/** `<ifname> <value>` lines; a value that is not a number (unreadable file) is left out. */
function parsePromoteLines(text: string): Map<string, boolean> {
  const out = new Map<string, boolean>();
  for (const line of text.split("\n")) {
    const m = /^(\S+) (\d+)$/.exec(line.trim());
    if (m) out.set(m[1]!, m[2]! !== "0");
  }
  return out;
}

function addressesOf(link: IpJsonLink): LiveAddress[] {
  if (!Array.isArray(link.addr_info)) return [];
  const out: LiveAddress[] = [];
  for (const info of link.addr_info as IpJsonAddr[]) {
    if (typeof info?.local !== "string" || typeof info.prefixlen !== "number") continue;
    const c = parseCidr(`${info.local}/${info.prefixlen}`);
    if ("error" in c)
      throw new ProbeParseError(
        `\`ip -j addr show\` listed ${info.local}/${info.prefixlen} on ${String(link.ifname)}, which ${c.error}`,
      );
    out.push({
      ...c,
      scope: typeof info.scope === "string" ? info.scope : "",
      secondary: info.secondary === true,
      tentative: info.tentative === true && info.dadfailed !== true,
      dadfailed: info.dadfailed === true,
    });
  }
  return out;
}

/** Interface name → its addresses with their flags, in `ip` order. */
export function liveAddresses(ip: IpAddresses): Map<string, LiveAddress[]> {
  return new Map(ip.names.map((name) => [name, interfaceOf(ip, name)?.addresses ?? []]));
}

/** Whether deleting a primary IPv4 address of `iface` promotes a secondary (true), deletes them all (false), or is unknown (null). */
export function promotesSecondaries(ip: IpAddresses, iface: string): boolean | null {
  return interfaceOf(ip, iface)?.promoteSecondaries ?? null;
}

/** An interface by name (an own key only: a name like `constructor` is no Object property). */
function interfaceOf(ip: IpAddresses, name: string): IpInterface | undefined {
  return Object.hasOwn(ip.interfaces, name) ? ip.interfaces[name] : undefined;
}

/**
 * IPv4 addresses the kernel deletes together with `c` when promote_secondaries is off: `c` is its
 * subnet's primary on the interface, and these share its prefix length and network (as
 * __inet_del_ifa compares them). Empty for IPv6, for a secondary, and for a lone address.
 */
export function deletedAlongWith(c: LiveAddress, onInterface: LiveAddress[]): LiveAddress[] {
  if (c.family !== 4 || c.secondary) return [];
  return onInterface.filter((a) => a.family === 4 && a.text !== c.text && a.prefix === c.prefix && sameNetwork(a, c));
}

function sameNetwork(a: Cidr, b: Cidr): boolean {
  const bits = (c: Cidr) => networkBits(c.address, c.prefix);
  return bits(a) === bits(b);
}

/** The network part of an IPv4 address as a bit string. */
function networkBits(address: string, prefix: number): string {
  return address
    .split(".")
    .map((x) => Number(x).toString(2).padStart(8, "0"))
    .join("")
    .slice(0, prefix);
}

/** The network of an IPv4 address, e.g. 198.18.5.0/24 for 198.18.5.10/24. */
export function networkOf(c: Cidr): string {
  if (c.family !== 4) return c.text;
  const bits = networkBits(c.address, c.prefix).padEnd(32, "0");
  const octets = [0, 8, 16, 24].map((i) => parseInt(bits.slice(i, i + 8), 2));
  return `${octets.join(".")}/${c.prefix}`;
}
