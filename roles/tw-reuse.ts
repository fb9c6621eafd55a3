import { defineRole, type ParamProblem } from "../src/role.js";
import { planSysctlDropin, sysctlDropinPath } from "../src/sysctl/dropin.js";

export interface TwReuseParams {
  tcp_tw_reuse: 0 | 1 | 2;
  tcp_timestamps: 0 | 1 | 2;
  tcp_fin_timeout: number | null;
  tcp_max_tw_buckets: number | null;
}

const KEYS = {
  tcp_tw_reuse: "net.ipv4.tcp_tw_reuse",
  tcp_timestamps: "net.ipv4.tcp_timestamps",
  tcp_fin_timeout: "net.ipv4.tcp_fin_timeout",
  tcp_max_tw_buckets: "net.ipv4.tcp_max_tw_buckets",
} as const;

export default defineRole<TwReuseParams>({
  name: "tw-reuse",
  summary: "Let new outbound connections reuse TIME_WAIT ports instead of waiting 60 s for each",
  schema: {
    type: "object",
    additionalProperties: false,
    properties: {
      tcp_tw_reuse: {
        type: "integer",
        enum: [0, 1, 2],
        default: 1,
        description:
          "Allow a new outgoing connection to take a 4-tuple still in TIME_WAIT when its timestamp is newer (net.ipv4.tcp_tw_reuse; default 2 = loopback only). " +
          "Every connection this host closes first holds its 4-tuple for 60 s; at 500 closes/s to one upstream that is 30,000 TIME_WAIT sockets, " +
          "enough to exhaust the ephemeral ports and fail connect() with EADDRNOTAVAIL. It helps outgoing connections only: servers accepting connections gain nothing.",
        fix: "use 1 (reuse for all outgoing connections), 2 (loopback only, the kernel default) or 0 (never)",
      },
      tcp_timestamps: {
        type: "integer",
        enum: [0, 1, 2],
        default: 1,
        description:
          "TCP timestamps (RFC 7323, net.ipv4.tcp_timestamps, default 1). tcp_tw_reuse decides safety by comparing timestamps, so it does nothing without them; " +
          "the peer must have them on too. 2 enables them without per-connection random offsets.",
        fix: "use 1 (the kernel default); tcp_tw_reuse needs timestamps",
      },
      tcp_fin_timeout: {
        type: ["integer", "null"],
        minimum: 5,
        maximum: 300,
        default: null,
        description:
          "Seconds an orphaned connection waits in FIN_WAIT2 for the peer's FIN (net.ipv4.tcp_fin_timeout, default 60). " +
          "This is NOT the TIME_WAIT length (fixed at 60 s in the kernel); lower it only when `ss -s` shows many orphans. null leaves the host's value.",
        fix: "use an integer from 5 to 300, or null to leave it alone",
      },
      tcp_max_tw_buckets: {
        type: ["integer", "null"],
        minimum: 1024,
        maximum: 16777216,
        default: null,
        description:
          "Most TIME_WAIT sockets the host keeps (net.ipv4.tcp_max_tw_buckets; default scales with RAM). Above it the kernel destroys them early and logs " +
          '"TCP: time wait bucket table overflow". null leaves the host\'s value.',
        fix: "use an integer from 1024 to 16777216, or null to leave it alone",
      },
    },
  },

  validate(p) {
    const problems: ParamProblem[] = [];
    if (p.tcp_tw_reuse !== 0 && p.tcp_timestamps === 0) {
      problems.push({
        param: "tcp_timestamps",
        severity: "error",
        problem: `tcp_tw_reuse ${p.tcp_tw_reuse} needs TCP timestamps, but tcp_timestamps is 0: reuse would silently never happen`,
        fix: "set tcp_timestamps to 1, or tcp_tw_reuse to 0",
      });
    }
    return problems;
  },

  facts: (p) => [
    ...desiredKeys(p).map(([key]) => ({ kind: "sysctl" as const, key })),
    { kind: "file", path: sysctlDropinPath("tw-reuse") },
  ],

  plan(p, facts, ctx) {
    const desired = desiredKeys(p);
    const content = ctx.render("sysctl.conf.hbs", {
      tcp_tw_reuse: p.tcp_tw_reuse,
      tcp_timestamps: p.tcp_timestamps,
      tcp_fin_timeout: p.tcp_fin_timeout,
      tcp_max_tw_buckets: p.tcp_max_tw_buckets,
    });
    return planSysctlDropin({ role: "tw-reuse", content, desired, facts });
  },
});

function desiredKeys(p: TwReuseParams): Array<[string, string]> {
  const out: Array<[string, string]> = [
    [KEYS.tcp_tw_reuse, String(p.tcp_tw_reuse)],
    [KEYS.tcp_timestamps, String(p.tcp_timestamps)],
  ];
  if (p.tcp_fin_timeout !== null) out.push([KEYS.tcp_fin_timeout, String(p.tcp_fin_timeout)]);
  if (p.tcp_max_tw_buckets !== null) out.push([KEYS.tcp_max_tw_buckets, String(p.tcp_max_tw_buckets)]);
  return out;
}
