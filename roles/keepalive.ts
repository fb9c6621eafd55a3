import { defineRole, type Facts, type ParamProblem } from "../src/role.js";
import { planSysctlDropin, sysctlDropinPath } from "../src/sysctl/dropin.js";

export interface KeepaliveParams {
  tcp_keepalive_time: number;
  tcp_keepalive_intvl: number;
  tcp_keepalive_probes: number;
}

const KEYS = {
  tcp_keepalive_time: "net.ipv4.tcp_keepalive_time",
  tcp_keepalive_intvl: "net.ipv4.tcp_keepalive_intvl",
  tcp_keepalive_probes: "net.ipv4.tcp_keepalive_probes",
} as const;

export const KERNEL_DEFAULTS: KeepaliveParams = {
  tcp_keepalive_time: 7200,
  tcp_keepalive_intvl: 75,
  tcp_keepalive_probes: 9,
};

/** Below this, a healthy idle peer that misses a few probes (lossy Wi-Fi, a phone's sleeping radio) is cut off. */
export const MIN_SAFE_DETECTION_SECONDS = 60;

/** A dead peer is declared after the idle time, then `probes` unanswered probes `intvl` apart. */
export function detectionSeconds(p: KeepaliveParams): number {
  return p.tcp_keepalive_time + p.tcp_keepalive_intvl * p.tcp_keepalive_probes;
}

/** 7875 → "2 h 11 min 15 s", 750 → "12 min 30 s", 60 → "1 min". */
export function formatDuration(totalSeconds: number): string {
  const h = Math.floor(totalSeconds / 3600);
  const min = Math.floor((totalSeconds % 3600) / 60);
  const s = totalSeconds % 60;
  const parts = [h > 0 ? `${h} h` : "", min > 0 ? `${min} min` : "", s > 0 ? `${s} s` : ""].filter(Boolean);
  return parts.length > 0 ? parts.join(" ") : "0 s";
}

/** "600 + 30 × 5 = 750 s (12 min 30 s)": the arithmetic, so a reader can check it. */
export function describeDetection(p: KeepaliveParams): string {
  return `${p.tcp_keepalive_time} + ${p.tcp_keepalive_intvl} × ${p.tcp_keepalive_probes} = ${detectionSeconds(p)} s (${formatDuration(detectionSeconds(p))})`;
}

function liveParams(facts: Facts): KeepaliveParams | null {
  const read = (key: string) => {
    const v = (facts.sysctl[key] ?? "").trim();
    return /^\d+$/.test(v) ? Number(v) : null;
  };
  const time = read(KEYS.tcp_keepalive_time);
  const intvl = read(KEYS.tcp_keepalive_intvl);
  const probes = read(KEYS.tcp_keepalive_probes);
  if (time === null || intvl === null || probes === null) return null;
  return { tcp_keepalive_time: time, tcp_keepalive_intvl: intvl, tcp_keepalive_probes: probes };
}

function detectionNote(p: KeepaliveParams, live: KeepaliveParams | null): string {
  const prefix = "dead-peer detection for SO_KEEPALIVE sockets";
  if (live !== null && detectionSeconds(live) === detectionSeconds(p)) return `${prefix}: ${describeDetection(p)}`;
  const now = live === null ? "unknown (the keys are unreadable)" : `${describeDetection(live)}`;
  return `${prefix}: ${now} on the host now → ${describeDetection(p)}`;
}

export default defineRole<KeepaliveParams>({
  name: "keepalive",
  summary: "Notice dead peers in minutes instead of 2 h 11 min, so half-dead connections stop piling up",
  schema: {
    type: "object",
    additionalProperties: false,
    properties: {
      tcp_keepalive_time: {
        type: "integer",
        minimum: 10,
        maximum: 7200,
        default: 600,
        description:
          "Seconds a connection must be idle before the kernel sends the first keepalive probe (net.ipv4.tcp_keepalive_time, default 7200 = 2 h). " +
          "Only sockets that enabled SO_KEEPALIVE use it: the application's own option, or e.g. nginx `listen … so_keepalive=on`, HAProxy `option tcpka`; " +
          "an application that sets TCP_KEEPIDLE/TCP_KEEPINTVL/TCP_KEEPCNT on a socket overrides these three values for that socket. " +
          "With the default, a client that vanished (power loss, a NAT that forgot the flow, a cable pulled) holds its socket, file descriptor and memory " +
          "for 2 h 11 min 15 s; at 100k connections and a few per cent of clients disappearing per hour, thousands of dead sockets pile up. " +
          "600 s costs about 167 probes/s for 100,000 idle connections. A NAT or load balancer that drops idle flows sooner (AWS NLB 350 s, Azure LB 4 min) " +
          "needs a value below its timeout to keep them open. Probes are only sent while the connection is idle: a peer that vanishes with data in flight " +
          "is detected by retransmission timeouts (tcp_retries2, about 15 min) instead.",
        fix: "use seconds from 10 to 7200 (the kernel default); 300-600 suits most servers",
      },
      tcp_keepalive_intvl: {
        type: "integer",
        minimum: 1,
        maximum: 300,
        default: 30,
        description:
          "Seconds between unanswered keepalive probes (net.ipv4.tcp_keepalive_intvl, default 75). " +
          "30 s still rides out a few seconds of packet loss between probes while cutting the default's 675 s of probing (75 × 9) to 150 s (30 × 5).",
        fix: "use seconds from 1 to 300",
      },
      tcp_keepalive_probes: {
        type: "integer",
        minimum: 1,
        maximum: 20,
        default: 5,
        description:
          "Unanswered probes before the kernel declares the peer dead and resets the connection, so the application's next read() fails with ETIMEDOUT " +
          "(net.ipv4.tcp_keepalive_probes, default 9). One answered probe resets the count; 5 tolerates 4 lost probes in a row.",
        fix: "use a count from 1 to 20",
      },
    },
  },

  validate(p) {
    const problems: ParamProblem[] = [];
    const seconds = detectionSeconds(p);
    if (seconds < MIN_SAFE_DETECTION_SECONDS) {
      problems.push({
        param: "tcp_keepalive_time",
        severity: "warning",
        problem:
          `dead-peer detection takes only ${describeDetection(p)}: an idle but healthy peer on a lossy link or a mobile client whose radio sleeps ` +
          `misses a few probes and is cut off`,
        fix: `keep tcp_keepalive_time + tcp_keepalive_intvl × tcp_keepalive_probes at ${MIN_SAFE_DETECTION_SECONDS} s or more, e.g. 600, 30 and 5 (12 min 30 s)`,
      });
    }
    const kernel = detectionSeconds(KERNEL_DEFAULTS);
    if (seconds > kernel) {
      problems.push({
        param: "tcp_keepalive_time",
        severity: "warning",
        problem: `dead-peer detection takes ${describeDetection(p)}, longer than the kernel default's ${formatDuration(kernel)}: dead connections would pile up even longer`,
        fix: "lower tcp_keepalive_time, tcp_keepalive_intvl or tcp_keepalive_probes, e.g. 600, 30 and 5 (12 min 30 s)",
      });
    }
    return problems;
  },

  facts: () => [
    ...Object.values(KEYS).map((key) => ({ kind: "sysctl" as const, key })),
    { kind: "file", path: sysctlDropinPath("keepalive") },
  ],

  plan(p, facts, ctx) {
    const content = ctx.render("sysctl.conf.hbs", {
      ...p,
      before: describeDetection(KERNEL_DEFAULTS),
      after: describeDetection(p),
    });
    const desired: Array<[string, string]> = [
      [KEYS.tcp_keepalive_time, String(p.tcp_keepalive_time)],
      [KEYS.tcp_keepalive_intvl, String(p.tcp_keepalive_intvl)],
      [KEYS.tcp_keepalive_probes, String(p.tcp_keepalive_probes)],
    ];
    const plan = planSysctlDropin({ role: "keepalive", content, desired, facts });
    plan.notes.push(detectionNote(p, liveParams(facts)));
    return plan;
  },
});
