import { defineRole, refused, type Facts, type ParamProblem } from "../src/role.js";
import { planSysctlDropin, sysctlDropinPath } from "../src/sysctl/dropin.js";
import { plural, thousands } from "../src/output/words.js";
import {
  formatPortList,
  normalizePortRanges,
  parseLocalPortRange,
  parsePortList,
  parsePortRange,
  portsToRanges,
  type PortRange,
} from "../src/sysctl/portList.js";

export interface EphemeralPortsParams {
  port_range_start: number;
  port_range_end: number;
  reserve_listening_ports: boolean;
  reserved_ports: Array<number | string>;
}

const RANGE_KEY = "net.ipv4.ip_local_port_range";
const RESERVED_KEY = "net.ipv4.ip_local_reserved_ports";
const KERNEL_DEFAULT_PORTS = 60999 - 32768 + 1;
/** One 4 KiB page, less the newline. */
const MAX_SYSCTL_WRITE = 4095;

function extraRanges(p: EphemeralPortsParams): PortRange[] {
  return p.reserved_ports.map((item) => parsePortRange(String(item))).filter((r): r is PortRange => r !== null);
}

/**
 * With reserve_listening_ports off, a range that covers a port a service listens on (and nothing
 * reserves) is refused: the service's next restart can find its port taken by an outgoing
 * connection and fail to bind() with EADDRINUSE.
 */
function swallowedListeners(facts: Facts, p: EphemeralPortsParams, reserved: PortRange[]): string[] {
  const inRange = (port: number) => port >= p.port_range_start && port <= p.port_range_end;
  const swallowed = (facts.listeningPorts?.tcp ?? []).filter(
    (port) => inRange(port) && !reserved.some((r) => port >= r.from && port <= r.to),
  );
  if (swallowed.length === 0) return [];
  const list = formatPortList(portsToRanges(swallowed));
  const one = swallowed.length === 1;
  return [
    `the range ${p.port_range_start}-${p.port_range_end} swallows port${one ? "" : "s"} ${list} that this host listens on, with reserve_listening_ports: false and nothing reserving ${one ? "it" : "them"}: ` +
      `an outgoing connection can take ${one ? "it" : "one"} and the service fails to bind() with EADDRINUSE on its next restart. ` +
      `Set reserve_listening_ports: true, add ${list} to reserved_ports, or start the range above ${Math.max(...swallowed)}`,
  ];
}

function reservedInFile(content: string | null): PortRange[] {
  const m = content === null ? null : /^net\.ipv4\.ip_local_reserved_ports = (.*)$/m.exec(content);
  return (m && parsePortList(m[1]!)) ?? [];
}

/**
 * Ports to reserve inside the new range: every TCP listener, and UDP ports outside the host's
 * current ephemeral range. A UDP socket inside that range is most likely a client that called
 * sendto() without bind() (DNS, NTP, statsd) — reserving it would shrink the range on every run.
 */
function listeningCandidates(facts: Facts, p: EphemeralPortsParams): number[] {
  const bound = facts.listeningPorts;
  if (!bound) return [];
  const current = parseLocalPortRange(facts.sysctl[RANGE_KEY]);
  const inCurrent = (port: number) => current !== null && port >= current.from && port <= current.to;
  const udp = current === null ? [] : bound.udp.filter((port) => !inCurrent(port));
  const inNewRange = (port: number) => port >= p.port_range_start && port <= p.port_range_end;
  return [...new Set([...bound.tcp, ...udp])].filter(inNewRange).sort((a, b) => a - b);
}

export default defineRole<EphemeralPortsParams>({
  name: "ephemeral-ports",
  summary: "Widen the local port range so outbound connections to one upstream don't stop at 28k",
  schema: {
    type: "object",
    additionalProperties: false,
    properties: {
      port_range_start: {
        type: "integer",
        minimum: 1024,
        maximum: 65534,
        default: 1024,
        description:
          "First port the kernel may pick for an outgoing connection (net.ipv4.ip_local_port_range, default 32768). " +
          "Each destination ip:port can take one connection per local port, so the default 32768-60999 stops at 28,232 " +
          "connections to one upstream: connect() fails with EADDRNOTAVAIL, Nginx answers 502, the app can't reach Redis. " +
          "Starting at 1024 gives 64,512 ports. Ports below 1024 stay privileged and are never used.",
        fix: "use a port between 1024 and 65534, below port_range_end",
      },
      port_range_end: {
        type: "integer",
        minimum: 1025,
        maximum: 65535,
        default: 65535,
        description:
          "Last port the kernel may pick for an outgoing connection (default 60999). 65535 is the top of the port space. " +
          "Prefer an end whose parity differs from the start: the kernel splits the range by parity between connect() and bind() and warns otherwise.",
        fix: "use a port between 1025 and 65535, above port_range_start",
      },
      reserve_listening_ports: {
        type: "boolean",
        default: true,
        description:
          "Reserve (net.ipv4.ip_local_reserved_ports) every port this host listens on inside the new range, merged with the host's existing reserved list. " +
          "Without it, a service that restarts can find its port taken by an outgoing connection and fail to bind() with EADDRINUSE.",
      },
      reserved_ports: {
        type: "array",
        default: [],
        uniqueItems: true,
        items: {
          type: ["integer", "string"],
          pattern: "^[0-9]{1,5}(-[0-9]{1,5})?$",
          minimum: 1,
          maximum: 65535,
          fix: 'write a port as an integer (8080) or a range as a string ("9000-9100"), between 1 and 65535',
        },
        description:
          'Extra ports or ranges ("9000-9100") to keep out of the ephemeral range, for services that start after provision runs ' +
          "and so are not listening yet. Merged with the existing reserved list; never replaces it.",
        fix: 'write ports as integers (8080) or ranges as strings ("9000-9100") between 1 and 65535',
      },
    },
  },

  validate(p) {
    const problems: ParamProblem[] = [];
    if (p.port_range_start >= p.port_range_end) {
      problems.push({
        param: "port_range_start",
        severity: "error",
        problem: `port_range_start ${p.port_range_start} is not below port_range_end ${p.port_range_end}`,
        fix: "make port_range_start lower than port_range_end, e.g. 1024 and 65535",
      });
    } else if (p.port_range_start % 2 === p.port_range_end % 2) {
      problems.push({
        param: "port_range_end",
        severity: "warning",
        problem: `port_range_start ${p.port_range_start} and port_range_end ${p.port_range_end} have the same parity; the kernel logs "ip_local_port_range: prefer different parity for start/end values"`,
        fix: `use ${p.port_range_end % 2 === 0 ? (p.port_range_end + 1 > 65535 ? p.port_range_end - 1 : p.port_range_end + 1) : p.port_range_end - 1} as port_range_end`,
      });
    }
    p.reserved_ports.forEach((item) => {
      if (typeof item === "string" && !parsePortRange(item)) {
        problems.push({
          param: "reserved_ports",
          severity: "error",
          problem: `"${item}" is not a port range from 1 to 65535 with start <= end`,
          fix: 'write ranges as "low-high", e.g. "9000-9100"',
        });
      }
    });
    return problems;
  },

  lint(p, hints) {
    const reserved = extraRanges(p);
    const swallowed = hints.listenPorts.filter(
      (port) =>
        port >= p.port_range_start && port <= p.port_range_end && !reserved.some((r) => port >= r.from && port <= r.to),
    );
    if (swallowed.length === 0) return [];
    const list = swallowed.join(", ");
    const range = `${p.port_range_start}-${p.port_range_end}`;
    const one = swallowed.length === 1;
    return [
      p.reserve_listening_ports
        ? {
            param: "reserved_ports",
            severity: "warning",
            problem: `port${one ? "" : "s"} ${list} (listen_ports/ansible_port) inside the ephemeral range ${range} ${one ? "is" : "are"} reserved only if listening when run happens`,
            fix: `add ${list} to reserved_ports so a service that starts later can still bind()`,
          }
        : {
            param: "reserve_listening_ports",
            severity: "error",
            problem: `the ephemeral range ${range} swallows port${one ? "" : "s"} ${list} that the host listens on, and nothing reserves ${one ? "it" : "them"}: an outgoing connection can take ${one ? "it" : "one"} and the service fails to bind() with EADDRINUSE`,
            fix: `add ${list} to reserved_ports, set reserve_listening_ports: true, or start the range above ${Math.max(...swallowed)}`,
          },
    ];
  },

  facts: () => [
    { kind: "sysctl", key: RANGE_KEY },
    { kind: "sysctl", key: RESERVED_KEY },
    { kind: "listening-ports" },
    { kind: "file", path: sysctlDropinPath("ephemeral-ports") },
  ],

  plan(p, facts, ctx) {
    const path = sysctlDropinPath("ephemeral-ports");
    const existingText = facts.sysctl[RESERVED_KEY] ?? "";
    const live = parsePortList(existingText);
    if (live === null) {
      // Replacing a list we can't read would drop reservations someone relies on.
      return refused([
        `cannot parse the host's ${RESERVED_KEY} ${JSON.stringify(existingText)}; refusing to replace it`,
      ]);
    }
    // Reservations are only ever added: the live list, plus what our own file already reserved
    // (so a reservation lost live is restored), plus the params.
    const base = normalizePortRanges([...live, ...reservedInFile(facts.files[path] ?? null), ...extraRanges(p)]);
    const refusals = p.reserve_listening_ports ? [] : swallowedListeners(facts, p, base);
    const candidates = p.reserve_listening_ports ? listeningCandidates(facts, p) : [];
    const unreserved = candidates.filter((port) => !base.some((r) => port >= r.from && port <= r.to));
    // verify checks what was applied; a listener that appeared since is a pending change, not drift.
    const added = ctx.purpose === "plan" ? unreserved : [];
    const reservedList = formatPortList([...base, ...portsToRanges(added)]);
    const portCount = p.port_range_end - p.port_range_start + 1;

    const desired: Array<[string, string]> = [[RANGE_KEY, `${p.port_range_start} ${p.port_range_end}`]];
    if (reservedList.length >= MAX_SYSCTL_WRITE) {
      // The kernel takes at most one page per write to /proc/sys and cuts the rest off.
      refusals.push(
        `the reserved port list would be ${reservedList.length} characters, more than the ${MAX_SYSCTL_WRITE} the kernel accepts in one write to ${RESERVED_KEY}: ` +
          "merge reserved_ports into fewer, wider ranges",
      );
    }
    if (refusals.length > 0) return refused(refusals);
    if (reservedList !== "") desired.push([RESERVED_KEY, reservedList]);

    const content = ctx.render("sysctl.conf.hbs", {
      start: p.port_range_start,
      end: p.port_range_end,
      portCount,
      defaultCount: KERNEL_DEFAULT_PORTS,
      reservedList,
    });
    const plan = planSysctlDropin({ role: "ephemeral-ports", content, desired, facts });
    plan.notes.push(
      `outbound capacity per destination ip:port: ${plural(portCount, "port")} (default ${thousands(KERNEL_DEFAULT_PORTS)})`,
    );
    const list = formatPortList(portsToRanges(unreserved));
    if (unreserved.length > 0) {
      plan.notes.push(
        ctx.purpose === "plan"
          ? `reserving listening ports inside the range: ${list}`
          : `listening inside the range but not reserved yet: ${list} (run will reserve them)`,
      );
    }
    return plan;
  },
});
