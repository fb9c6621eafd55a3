import {
  defineRole,
  probeRequest,
  probeResult,
  refused,
  type Facts,
  type ParamProblem,
  type ProbeResult,
} from "../src/role.js";
import { planSysctlDropin, sysctlDropinPath } from "../src/sysctl/dropin.js";
import { endpointName, LISTEN_BACKLOGS_PROBE, type Listener } from "../src/facts/listenBacklogs.js";

export interface SynBacklogParams {
  somaxconn: number;
  tcp_max_syn_backlog: number;
  tcp_syncookies: 0 | 1 | 2;
  tcp_abort_on_overflow: 0 | 1;
  tcp_synack_retries: number;
  netdev_max_backlog: number | null;
}

const KEYS = {
  somaxconn: "net.core.somaxconn",
  tcp_max_syn_backlog: "net.ipv4.tcp_max_syn_backlog",
  tcp_syncookies: "net.ipv4.tcp_syncookies",
  tcp_abort_on_overflow: "net.ipv4.tcp_abort_on_overflow",
  tcp_synack_retries: "net.ipv4.tcp_synack_retries",
  netdev_max_backlog: "net.core.netdev_max_backlog",
} as const;

type Param = keyof typeof KEYS;

export default defineRole<SynBacklogParams>({
  name: "syn-backlog",
  summary: "Let bursts of new connections queue instead of being dropped or refused",
  schema: {
    type: "object",
    additionalProperties: false,
    properties: {
      somaxconn: {
        type: "integer",
        minimum: 128,
        maximum: 65535,
        default: 65535,
        description:
          "Cap on every listening socket's accept queue: listen(fd, backlog) gets min(backlog, somaxconn) (net.core.somaxconn, default 4096 since Linux 5.4, 128 before). " +
          "When connections complete faster than the application calls accept() (a deploy that reconnects 100k WebSocket clients, a load balancer failing over), " +
          "those past the queue are dropped (counted by `nstat -az TcpExtListenOverflows`) and each client waits for a retransmission: 1 s, 3 s, 7 s later. " +
          "65535 is the largest value every kernel stores correctly (3.10 and older kept the backlog in 16 bits: 65536 became 0). " +
          "It only raises the cap: each application must still ask for a large backlog in listen() (nginx's default is 511), " +
          "and a listener keeps the cap it got until it calls listen() again (restart it).",
        fix: "use 128 to 65535; 65535 for a host that accepts bursts of thousands of connections",
      },
      tcp_max_syn_backlog: {
        type: "integer",
        minimum: 128,
        maximum: 1048576,
        default: 65535,
        description:
          "Half-open connections (SYN received, handshake not finished) the kernel keeps before it treats the SYN queue as under attack " +
          "(net.ipv4.tcp_max_syn_backlog; default max(128, TCP hash table size / 128), so 128 to a few thousand depending on memory). " +
          "A listener's SYN queue is also bounded by its accept queue (min(listen() backlog, somaxconn)); with tcp_syncookies 0, once less than a quarter of " +
          "this value is free, SYNs from clients not seen before are dropped. 65535 matches somaxconn so this is never the smaller limit.",
        fix: "use 128 to 1048576; keep it at least as large as somaxconn",
      },
      tcp_syncookies: {
        type: "integer",
        enum: [0, 1, 2],
        default: 1,
        description:
          "When a listener's SYN queue overflows, answer new SYNs with a SYN cookie (the connection state encoded in the sequence number) instead of dropping them " +
          "(net.ipv4.tcp_syncookies, default 1). A SYN flood or a burst of reconnecting clients then cannot lock real clients out; the kernel logs " +
          '"Possible SYN flooding on port N. Sending cookies." 1 = cookies only on overflow. 2 = cookies for every connection, for testing: without TCP timestamps ' +
          "those connections lose window scaling and SACK. 0 = off: a full queue drops new connections.",
        fix: "use 1 (cookies only when the queue overflows)",
      },
      tcp_abort_on_overflow: {
        type: "integer",
        enum: [0, 1],
        default: 0,
        description:
          "What the kernel does when a handshake completes but the accept queue is full (net.ipv4.tcp_abort_on_overflow, default 0). " +
          "0 ignores the client's final ACK: the server resends its SYN-ACK (up to tcp_synack_retries), the client answers again, and it gets in once the " +
          "application catches up, so a short burst costs latency, not errors. 1 answers with a RST: every connection of the burst fails at once with " +
          'ECONNRESET ("connection reset by peer"). Use 1 only when clients must fail over to another server immediately.',
        fix: "use 0 (clients retry through a burst) or 1 (clients are reset at once)",
      },
      tcp_synack_retries: {
        type: "integer",
        minimum: 1,
        maximum: 10,
        default: 3,
        description:
          "How many times the server resends its SYN-ACK to a client that has not completed the handshake (net.ipv4.tcp_synack_retries, default 5: " +
          "resends at 1, 3, 7, 15 and 31 s and gives up after 63 s). 3 resends at 1, 3 and 7 s and gives up after 15 s: enough for a lost packet " +
          "or a briefly full accept queue, while the half-open entries of clients that went away (or of spoofed SYNs) free their slot 4 times sooner.",
        fix: "use 1 to 10; 3 gives a client 15 s to complete the handshake",
      },
      netdev_max_backlog: {
        type: ["integer", "null"],
        minimum: 1000,
        maximum: 1048576,
        default: 16384,
        description:
          "Packets each CPU may queue between receiving them and the TCP/IP stack processing them (net.core.netdev_max_backlog, default 1000). " +
          "It applies to packets steered by RPS/RFS and to those from virtual devices (veth, bridges, tunnels, loopback); beyond it packets are dropped, " +
          "counted in the second column of /proc/net/softnet_stat. At 1 million packets/s, 1000 packets is 1 ms of burst; 16384 absorbs 16 ms " +
          "(queued packets take memory only while queued). It is one value for the whole machine and does not exist inside a network namespace " +
          "(a container): set null there. null leaves the host's value.",
        fix: "use 1000 (the kernel default) to 1048576, or null to leave the host's value",
      },
    },
  },

  validate(p) {
    const problems: ParamProblem[] = [];
    if (p.tcp_syncookies === 0) {
      problems.push({
        param: "tcp_syncookies",
        severity: "warning",
        problem:
          "tcp_syncookies 0: when a listener's SYN queue is full (a SYN flood, or a burst of reconnecting clients) new connections are dropped until it drains",
        fix: "use 1 (cookies only when the queue overflows)",
      });
    } else if (p.tcp_syncookies === 2) {
      problems.push({
        param: "tcp_syncookies",
        severity: "warning",
        problem:
          "tcp_syncookies 2 sends cookies for every connection, even without overflow: it is meant for testing, and without TCP timestamps those connections lose window scaling and SACK",
        fix: "use 1 (cookies only when the queue overflows)",
      });
    }
    if (p.tcp_abort_on_overflow === 1) {
      problems.push({
        param: "tcp_abort_on_overflow",
        severity: "warning",
        problem:
          "tcp_abort_on_overflow 1 resets every connection that arrives while the accept queue is full: a short burst becomes a burst of ECONNRESET errors",
        fix: "use 0 so clients retry through the burst, unless they must fail over to another server at once",
      });
    }
    return problems;
  },

  facts: (p) => [
    ...desiredKeys(p).map(([key]) => ({ kind: "sysctl" as const, key })),
    { kind: "file", path: sysctlDropinPath("syn-backlog") },
    probeRequest(LISTEN_BACKLOGS_PROBE),
  ],

  plan(p, facts, ctx) {
    const desired = desiredKeys(p);
    const missing = missingKeys(desired, facts);
    if (missing.length > 0) return refused(missing);
    const content = ctx.render("sysctl.conf.hbs", { ...p });
    const plan = planSysctlDropin({ role: "syn-backlog", content, desired, facts });
    plan.notes.push(...listenerNotes(p.somaxconn, probeResult(facts, LISTEN_BACKLOGS_PROBE)));
    return plan;
  },
});

function desiredKeys(p: SynBacklogParams): Array<[string, string]> {
  const params: Param[] = [
    "somaxconn",
    "tcp_max_syn_backlog",
    "tcp_syncookies",
    "tcp_abort_on_overflow",
    "tcp_synack_retries",
    "netdev_max_backlog",
  ];
  return params.filter((name) => p[name] !== null).map((name) => [KEYS[name], String(p[name])]);
}

/** A key the host does not have can't be set; say why rather than let apply fail on a missing /proc/sys file. */
function missingKeys(desired: Array<[string, string]>, facts: Facts): string[] {
  return desired
    .filter(([key]) => (facts.sysctl[key] ?? null) === null)
    .map(([key]) =>
      key === KEYS.netdev_max_backlog
        ? `${key} does not exist on this host: it is one value for the whole machine, and a non-initial network namespace (a container) does not show it. ` +
          "Set syn_backlog.netdev_max_backlog: null for this host to leave it alone, and tune it on the machine that owns the network stack"
        : `${key} does not exist on this host's kernel (/proc/sys/${key.replace(/\./g, "/")} is missing), so syn-backlog cannot set it. Remove the role from this host`,
    );
}

/** One note per port and backlog whose accept queue is smaller than somaxconn allows. */
export function listenerNotes(somaxconn: number, result: ProbeResult<Listener[]> | undefined): string[] {
  if (!result)
    return [
      "listening sockets' backlogs were not read; listeners that cap their own queue below somaxconn are not reported",
    ];
  if (!result.ok) return [`cannot report listeners that cap their own queue below somaxconn: ${result.error}`];
  const groups = new Map<string, { port: number; backlog: number; on: string[] }>();
  for (const l of result.value.filter((x) => x.backlog < somaxconn)) {
    const id = `${l.port}/${l.backlog}`;
    const group = groups.get(id) ?? { port: l.port, backlog: l.backlog, on: [] };
    const on = sharedScopeName(endpointName(l).replace(/:\d+$/, ""));
    if (!group.on.includes(on)) group.on.push(on);
    groups.set(id, group);
  }
  return [...groups.values()]
    .sort((a, b) => a.port - b.port || a.backlog - b.backlog)
    .map(
      (g) =>
        `port ${g.port} listens with backlog ${g.backlog} < somaxconn ${somaxconn} (on ${g.on.sort().join(", ")}): the application caps its own queue; ` +
        `raise its listen() backlog, e.g. nginx \`listen … backlog=${somaxconn}\` (a listener that called listen() before somaxconn was raised keeps the old cap until it restarts)`,
    );
}

/**
 * Wildcard and loopback listeners read the same on every host; a host's own address would make
 * every host's note unique and stop `plan` from grouping identical hosts.
 */
function sharedScopeName(address: string): string {
  const bare = address.replace(/%.*$/, "");
  return /^(0\.0\.0\.0|\[::\]|\*|127\.\d+\.\d+\.\d+|\[::1\])$/.test(bare) ? address : "this host's address";
}
