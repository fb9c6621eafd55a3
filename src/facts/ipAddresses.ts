import { defineProbe, ProbeParseError } from "./probe.js";

/** Canonical, as `ip -j addr` prints it (RFC 5952 for IPv6); text is `address/prefix`. */
export interface Cidr {
  family: 4 | 6;
  address: string;
  prefix: number;
  text: string;
}

/** Strict: no leading zeros, no IPv4-in-IPv6. */
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

/** An IPv4-mapped address (::ffff:a.b.c.d) becomes a.b.c.d; a zone (%eth0) is dropped. */
export function canonicalIp(input: string): string | null {
  const text = input.trim().replace(/%.*$/, "");
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(text);
  const ip = parseIp(mapped ? mapped[1]! : text);
  return "error" in ip ? null : ip.address;
}

type ParsedIp = { family: 4 | 6; address: string; bytes: number[] } | { error: string };

function parseIp(text: string): ParsedIp {
  return text.includes(":") ? parseIpv6(text) : parseIpv4(text);
}

function parseIpv4(text: string): ParsedIp {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255)) {
    return { error: "is not an IPv4 address (four numbers 0-255 without leading zeros) or an IPv6 address" };
  }
  const bytes = parts.map(Number);
  return { family: 4, address: bytes.join("."), bytes };
}

/** The URL parser reads exactly RFC 4291's text forms (dotted IPv4 tail included) and prints RFC 5952. */
function parseIpv6(text: string): ParsedIp {
  const bad = { error: "is not an IPv6 address (eight groups of 1-4 hex digits, at most one ::)" };
  let address: string;
  try {
    // It would drop tabs and newlines.
    if (!/^[0-9a-fA-F:.]+$/.test(text)) return bad;
    address = new URL(`http://[${text}]/`).hostname.slice(1, -1);
  } catch {
    return bad;
  }
  const [head, tail] = address.split("::").map((half) => (half === "" ? [] : half.split(":")));
  const zeros = Array<string>(8 - head!.length - (tail?.length ?? 0)).fill("0");
  const words = [...head!, ...zeros, ...(tail ?? [])].map((g) => parseInt(g, 16));
  return { family: 6, address, bytes: words.flatMap((w) => [w >> 8, w & 0xff]) };
}

/** Why an address can't be an extra source address: a special range, or its prefix's network or broadcast address. */
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
      const host = bitString(b).slice(c.prefix);
      if (!host.includes("1")) return `is the network address of ${c.text}`;
      if (!host.includes("0")) return `is the broadcast address of ${c.text}`;
    }
    return null;
  }
  if (b.slice(0, 10).every((x) => x === 0) && ((b[10] === 0 && b[11] === 0) || (b[10] === 0xff && b[11] === 0xff))) {
    return "is unspecified, loopback, IPv4-compatible or IPv4-mapped (::/96, ::ffff:0:0/96), never an interface address";
  }
  if (b[0] === 0xfe && (b[1]! & 0xc0) === 0x80)
    return "is link-local (fe80::/10): it can't reach anything beyond the local link";
  if (b[0] === 0xff) return "is multicast (ff00::/8), never a source address";
  if (c.prefix < 127 && !bitString(b).slice(c.prefix).includes("1"))
    return `is the subnet-router anycast address of ${c.text}`;
  return null;
}

function bitString(bytes: number[]): string {
  return bytes.map((x) => x.toString(2).padStart(8, "0")).join("");
}

export function isLinkLocal(c: Cidr): boolean {
  return c.family === 4 ? c.address.startsWith("169.254.") : /^fe[89ab]/i.test(c.address);
}

const PROMOTE_MARKER = "# promote_secondaries";

/** An address with the flags that decide what deleting or using it does. */
export interface LiveAddress extends Cidr {
  scope: string;
  /** IPv4: not its subnet's first (primary) address here; deleting the primary takes these along unless promote_secondaries is on. */
  secondary: boolean;
  /** Duplicate address detection running (a failed one, also tentative to the kernel, is dadfailed only). */
  tentative: boolean;
  /** Another node on the link has it: the kernel never sends from it. */
  dadfailed: boolean;
}

export type LiveAddresses = Map<string, LiveAddress[]>;

export interface IpLink {
  name: string;
  addresses: LiveAddress[];
}

export interface IpInterface {
  addresses: LiveAddress[];
  cidrs: string[];
  /** Not dadfailed (tentative ones are usable within a second or two). */
  usable: string[];
  /** Deleting a primary IPv4 address promotes a secondary (this interface's or `all`'s setting is 1); null when unreadable. */
  promoteSecondaries: boolean | null;
}

/** The probe's answer, in `ip` order. */
export interface IpAddresses {
  names: string[];
  interfaces: Record<string, IpInterface>;
  /** Every address of the host, without prefix. */
  locals: string[];
}

/** `ip -j addr show` (iproute2 4.14+), then each interface's promote_secondaries. */
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
    const promote = parsePromoteLines(at === -1 ? "" : raw.slice(at + PROMOTE_MARKER.length + 1));
    const all = promote.get("all") === true;
    const texts = (addrs: LiveAddress[]) => addrs.map((a) => a.text);
    const answerOf = ({ name, addresses }: IpLink): IpInterface => {
      const own = promote.get(name);
      return {
        addresses,
        cidrs: texts(addresses),
        usable: texts(addresses.filter((a) => !a.dadfailed)),
        promoteSecondaries: own === undefined ? null : own || all,
      };
    };
    return {
      names: links.map((l) => l.name),
      interfaces: Object.fromEntries(links.map((l) => [l.name, answerOf(l)])),
      locals: links.flatMap((l) => l.addresses.map((a) => a.address)),
    };
  },
});

type IpJsonLink = { ifname?: unknown; addr_info?: unknown };
type IpJsonAddr = Record<"local" | "prefixlen" | "scope" | "secondary" | "tentative" | "dadfailed", unknown>;

/** Skips the empty objects iproute2 prints for links it filtered out. */
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

/** `<ifname> <value>` lines; a value that is not a number (unreadable) is left out. */
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

export function liveAddresses(ip: IpAddresses): LiveAddresses {
  return new Map(ip.names.map((name) => [name, interfaceOf(ip, name)?.addresses ?? []]));
}

export function promotesSecondaries(ip: IpAddresses, iface: string): boolean | null {
  return interfaceOf(ip, iface)?.promoteSecondaries ?? null;
}

/** An own key only: an interface named `constructor` is no Object property. */
function interfaceOf(ip: IpAddresses, name: string): IpInterface | undefined {
  return Object.hasOwn(ip.interfaces, name) ? ip.interfaces[name] : undefined;
}

/**
 * What the kernel deletes with `c` when promote_secondaries is off: when `c` is its subnet's IPv4
 * primary, the addresses of the same prefix length and network (as __inet_del_ifa compares them).
 */
export function deletedAlongWith(c: LiveAddress, onInterface: LiveAddress[]): LiveAddress[] {
  if (c.family !== 4 || c.secondary) return [];
  return onInterface.filter((a) => a.family === 4 && a.text !== c.text && networkOf(a) === networkOf(c));
}

/** 198.18.5.10/24 → 198.18.5.0/24. */
export function networkOf(c: Cidr): string {
  if (c.family !== 4) return c.text;
  const bits = bitString(c.address.split(".").map(Number)).slice(0, c.prefix).padEnd(32, "0");
  const octets = [0, 8, 16, 24].map((i) => parseInt(bits.slice(i, i + 8), 2));
  return `${octets.join(".")}/${c.prefix}`;
}
