import type { HostSample } from "../../src/status/sample.js";

/**
 * A host at rest: every wall well below 70 %, every counter flat. Each test changes what it is
 * about. The open-files wall (100 of 1,024 fds, 9.8 %) is the fullest, so it is the closest wall.
 */
export function hostSample(over: Partial<HostSample> = {}): HostSample {
  return {
    windowSeconds: 1,
    sysctl: {
      "net/ipv4/ip_local_port_range": "32768\t60999",
      "net/ipv4/ip_local_reserved_ports": "",
      "net/ipv4/tcp_max_tw_buckets": "131072",
      "net/ipv4/tcp_max_orphans": "131072",
      "net/core/somaxconn": "4096",
      "net/ipv4/tcp_max_syn_backlog": "2048",
      "net/ipv4/tcp_syncookies": "1",
      "net/ipv4/tcp_keepalive_time": "7200",
      "net/ipv4/tcp_keepalive_intvl": "75",
      "net/ipv4/tcp_keepalive_probes": "9",
      "fs/file-nr": "1000\t0\t100000",
      "fs/file-max": "100000",
      "net/netfilter/nf_conntrack_count": "1000",
      "net/netfilter/nf_conntrack_max": "262144",
    },
    portRange: { from: 32768, to: 60999 },
    reservedPorts: [],
    processes: {
      read: 100,
      fds: 2000,
      unreadable: 0,
      worst: [{ pid: 1234, name: "nginx", fds: 100, soft: 1024, hard: 1024 }],
    },
    timeWait: 100,
    orphans: 0,
    socketsByState: { ESTABLISHED: 10, TIME_WAIT: 100 },
    destinations: [{ endpoint: "198.18.0.3:5201", sockets: 100, timeWait: 10, sources: 1 }],
    listeners: [{ endpoint: "0.0.0.0:80", port: 80, acceptQueue: 0, backlog: 511, synQueue: 0 }],
    keepalive: {
      detectionSeconds: 7875,
      established: 10,
      withKeepalive: 0,
      idle: 0,
      idleWithKeepalive: 0,
      longestIdle: [],
    },
    netstat: { ListenOverflows: 0, ListenDrops: 0, TCPBacklogDrop: 0, TCPReqQFullDrop: 0 },
    conntrack: { drop: 0, early_drop: 0, insert_failed: 0 },
    ...over,
  };
}

/** hostSample with some sysctls changed; `undefined` removes one (the kernel does not have it). */
export function withSysctls(
  sysctls: Partial<Record<keyof HostSample["sysctl"], string | undefined>>,
  over: Partial<HostSample> = {},
): HostSample {
  const s = hostSample(over);
  const sysctl = { ...s.sysctl };
  for (const [k, v] of Object.entries(sysctls) as Array<[keyof HostSample["sysctl"], string | undefined]>) {
    if (v === undefined) delete sysctl[k];
    else sysctl[k] = v;
  }
  return { ...s, sysctl };
}
