import type { BoundPorts } from "../role.js";

/** Reads /proc/net/{tcp,tcp6,udp,udp6} in one go; no dependency on ss or netstat being installed. */
export const LISTENING_PORTS_COMMAND = "cat /proc/net/tcp /proc/net/tcp6 /proc/net/udp /proc/net/udp6 2>/dev/null";

const TCP_LISTEN = "0A";
const UDP_UNCONNECTED = "07";

/**
 * Local ports of TCP sockets in LISTEN and of bound, unconnected UDP sockets — the ports a
 * service would lose if an outgoing connection took them. Each list sorted and unique.
 */
export function parseListeningPorts(procNet: string): BoundPorts {
  const tcp = new Set<number>();
  const udp = new Set<number>();
  let isUdp = false;
  for (const raw of procNet.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("sl")) {
      // Header lines are the same for tcp and udp; udp tables have "ref pointer drops" columns.
      isUdp = /\bdrops\b/.test(line);
      continue;
    }
    const cols = line.split(/\s+/);
    if (cols.length < 4) continue;
    const local = cols[1];
    const remote = cols[2];
    const state = cols[3];
    if (!local || !remote || !state) continue;
    const port = parseInt(local.split(":").pop() ?? "", 16);
    if (!Number.isInteger(port) || port <= 0) continue;
    if (!isUdp && state === TCP_LISTEN) tcp.add(port);
    if (isUdp && state === UDP_UNCONNECTED && /^0+:0000$/.test(remote)) udp.add(port);
  }
  const sorted = (set: Set<number>) => [...set].sort((a, b) => a - b);
  return { tcp: sorted(tcp), udp: sorted(udp) };
}
