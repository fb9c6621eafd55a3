import type { HostReport } from "../../src/report.js";
import type { PlannedChange, PlannedCheck } from "../../src/plan.js";
import type { CheckResult } from "../../src/verify.js";
import { describeDetection } from "../../roles/keepalive.js";
import { changed, failed, FILE, REUSE } from "./_reports.js";

/** Synthetic fleets of the size users run: web001…web200. */
export const FLEET_SIZE = 200;

export function hostNames(n = FLEET_SIZE, prefix = "web"): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}${String(i + 1).padStart(3, "0")}`);
}

/** A per-host address, as an SSH error names it: 198.18.0.1 … 198.18.0.200. */
export function addressOf(i: number): string {
  return `198.18.${Math.floor((i + 1) / 256)}.${(i + 1) % 256}`;
}

/** A per-host SHA256 host key fingerprint (43 base64 characters). */
export function fingerprintOf(i: number): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const own = alphabet[(i >> 6) % 64]! + alphabet[i % 64]!;
  return `SHA256:${own}${Array.from({ length: 41 }, (_, k) => alphabet[(i * 7 + k * 13 + i * k) % 64]).join("")}`;
}

/** The same lockout on every host, each message naming the host's address, pid and fingerprint. */
export function lockoutMessage(host: string, i: number): string {
  return (
    `lockout: a fresh login to ${host} failed after the change (connection refused by ${addressOf(i)}:22, ` +
    `host key ${fingerprintOf(i)}, sshd pid ${4000 + i * 37}); reverted ${3 + (i % 2)} changes through the open connection`
  );
}

export function lockedOutFleet(n = FLEET_SIZE): HostReport[] {
  return hostNames(n).map((h, i) => failed(h, "failed", lockoutMessage(h, i)));
}

export function unreachableFleet(n = FLEET_SIZE): HostReport[] {
  return hostNames(n).map((h, i) =>
    failed(
      h,
      "unreachable",
      `no SSH handshake from ${addressOf(i)}:22 within 5 s (host down, packets dropped, or a firewall)`,
    ),
  );
}

const SERVICES = [
  "nginx",
  "haproxy",
  "envoy",
  "redis",
  "postgres",
  "kafka",
  "memcached",
  "varnish",
  "pgbouncer",
  "etcd",
];

function sysctlCheck(key: string, expected: string): PlannedCheck {
  return { kind: "sysctl", key, expected, message: `${key} is live`, role: "tuning" };
}

function probeCheck(label: string, expected: string, compare: "equal" | "at-least" | "includes"): PlannedCheck {
  return {
    kind: "probe",
    probe: "p",
    field: ["v"],
    expected,
    compare,
    label,
    message: `${label} holds`,
    role: "fd-limits",
  };
}

/**
 * 30 checks on one host. Some actual values are the host's own (its address, a count), the
 * services checked depend on the host (so hosts differ in what is checked, not only in values),
 * and every 9th host has one mismatch, on a check that depends on the host too.
 */
export function verifiedHost(host: string, i: number): HostReport {
  const results: CheckResult[] = [];
  for (let k = 0; k < 20; k++)
    results.push({
      check: sysctlCheck(`net.core.tuning_key_${k}`, String(1000 * k)),
      actual: String(1000 * k),
      ok: true,
    });
  results.push({
    check: probeCheck("secondary source addresses on eth0", `${addressOf(i)}/24`, "includes"),
    actual: `${addressOf(i)}/24, 10.1.${i % 250}.7/24`,
    ok: true,
  });
  results.push({
    check: probeCheck("fresh login: soft nofile", "65536", "at-least"),
    actual: String(65536 + i),
    ok: true,
  });
  for (let k = 0; k < 8; k++) {
    const service = SERVICES[(i + k) % SERVICES.length]!;
    results.push({
      check: probeCheck(`${service} running: hard nofile`, "1048576", "at-least"),
      actual: "1048576",
      ok: true,
    });
  }
  if (i % 9 === 0) {
    const bad = results[i % 20]!;
    results[i % 20] = { ...bad, actual: String(7 + i), ok: false };
  }
  const ok = results.every((r) => r.ok);
  return {
    host,
    status: ok ? "unchanged" : "failed",
    plan: { host, changes: [], checks: results.map((r) => r.check), notes: [], refusals: [] },
    checks: results,
  };
}

export function verifiedFleet(n = FLEET_SIZE): HostReport[] {
  return hostNames(n).map(verifiedHost);
}

/** A plan that is the host's own: its live values and its drop-in's old content differ from every other host's. */
export function ownPlan(host: string, i: number): HostReport {
  const somaxconn: PlannedChange = {
    kind: "sysctl",
    key: "net.core.somaxconn",
    before: String(128 + i),
    after: "65535",
    description: "set net.core.somaxconn live",
    role: "syn-backlog",
  };
  const file: PlannedChange = {
    ...(FILE as Extract<PlannedChange, { kind: "file" }>),
    before: `# hand-tuned on ${host}\nnet.ipv4.tcp_tw_reuse = ${i % 3}\nnet.core.somaxconn = ${128 + i}\n`,
  };
  return changed(
    host,
    [file, REUSE, somaxconn],
    [{ role: "syn-backlog", text: `port ${8000 + i} listens with backlog ${64 + i}` }],
  );
}

/** 200 hosts: 170 with a plan of their own, 20 unchanged, 10 locked out (each naming its address). */
export function ownPlansFleet(): HostReport[] {
  return hostNames().map((h, i) => {
    if (i >= 190) return failed(h, "failed", lockoutMessage(h, i));
    if (i >= 170) return changed(h, []);
    return ownPlan(h, i);
  });
}

/** The notes every host of the live-drift fleet gets, as `provision plan` wrote them (a container fleet). */
const DRIFT_NOTES = [
  {
    role: "fd-limits",
    text: "systemd is not running here (PID 1 is process_api): the systemd drop-ins wait for the next boot with systemd; no daemon-reload",
  },
  { role: "ephemeral-ports", text: "outbound capacity per destination ip:port: 64,512 ports (default 28,232)" },
  {
    role: "syn-backlog",
    text: "port 22 listens with backlog 128 < somaxconn 65535 (on this host's address): the application caps its own queue; raise its listen() backlog, e.g. nginx `listen … backlog=65535` (a listener that called listen() before somaxconn was raised keeps the old cap until it restarts)",
  },
];
const DRIFT_NOTES_AFTER = [
  {
    role: "conntrack",
    text: "nf_conntrack is built into kernel 6.18.44-fc-v1272: its keys exist before systemd-sysctl runs, so /etc/sysctl.d applies at boot by itself; the modules-load entry and the udev rule matter only for a kernel that ships it as a module",
  },
  {
    role: "conntrack",
    text: "this host is not in the initial network namespace: nf_conntrack_max and hashsize belong to the machine and are left alone; only the per-namespace timeouts are set here",
  },
  {
    role: "secondary-source-ips",
    text: "no addresses for this host: set secondary_source_ips.addresses in its host vars to add source IPs",
  },
];

/**
 * Host h<i> (1…200) after someone set net.core.somaxconn to 1000 + i and tcp_keepalive_time to
 * 100 + i by hand: the plan sets both back, and the keepalive note quotes the live value.
 */
export function liveDriftPlan(i: number, host = `h${i}`): HostReport {
  const keepalive = { tcp_keepalive_intvl: 30, tcp_keepalive_probes: 5 };
  const live = describeDetection({ ...keepalive, tcp_keepalive_time: 100 + i });
  const wanted = describeDetection({ ...keepalive, tcp_keepalive_time: 600 });
  return changed(
    host,
    [
      sysctlChange("syn-backlog", "net.core.somaxconn", String(1000 + i), "65535"),
      sysctlChange("keepalive", "net.ipv4.tcp_keepalive_time", String(100 + i), "600"),
    ],
    [
      ...DRIFT_NOTES,
      { role: "keepalive", text: `dead-peer detection for SO_KEEPALIVE sockets: ${live} on the host now → ${wanted}` },
      ...DRIFT_NOTES_AFTER,
    ],
  );
}

export function liveDriftFleet(n = FLEET_SIZE): HostReport[] {
  return Array.from({ length: n }, (_, i) => liveDriftPlan(i + 1));
}

export function sysctlChange(role: string, key: string, before: string | null, after: string): PlannedChange {
  return { kind: "sysctl", key, before, after, description: `set ${key} live`, role };
}
