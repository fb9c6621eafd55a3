/** Real output captured on this machine, shared by the capacity probe's unit tests. */

/** Captured on this machine: the helpers' stdout on two fleet hosts (default port range, 8 processes per side). */
export const CLIENT_28K = `PROBE-RESULT provision-probe-5f0c2a9d41e7-client {"workers": [{"held": 4225, "target": 15000, "stop": "EADDRNOTAVAIL", "errors": {"EADDRNOTAVAIL": 1}, "nofile": [20000, 20000], "perSource": [{"source": "198.18.1.2", "held": 4225, "stop": "EADDRNOTAVAIL"}], "rampSeconds": 1.538}, {"held": 5660, "target": 15000, "stop": "EADDRNOTAVAIL", "errors": {"EADDRNOTAVAIL": 1}, "nofile": [20000, 20000], "perSource": [{"source": "198.18.1.2", "held": 5660, "stop": "EADDRNOTAVAIL"}], "rampSeconds": 1.491}, {"held": 3315, "target": 15000, "stop": "EADDRNOTAVAIL", "errors": {"EADDRNOTAVAIL": 1}, "nofile": [20000, 20000], "perSource": [{"source": "198.18.1.2", "held": 3315, "stop": "EADDRNOTAVAIL"}], "rampSeconds": 1.446}, {"held": 3078, "target": 15000, "stop": "EADDRNOTAVAIL", "errors": {"EADDRNOTAVAIL": 1}, "nofile": [20000, 20000], "perSource": [{"source": "198.18.1.2", "held": 3078, "stop": "EADDRNOTAVAIL"}], "rampSeconds": 1.491}, {"held": 3263, "target": 15000, "stop": "EADDRNOTAVAIL", "errors": {"EADDRNOTAVAIL": 1}, "nofile": [20000, 20000], "perSource": [{"source": "198.18.1.2", "held": 3263, "stop": "EADDRNOTAVAIL"}], "rampSeconds": 1.478}, {"held": 2341, "target": 15000, "stop": "EADDRNOTAVAIL", "errors": {"EADDRNOTAVAIL": 1}, "nofile": [20000, 20000], "perSource": [{"source": "198.18.1.2", "held": 2341, "stop": "EADDRNOTAVAIL"}], "rampSeconds": 1.41}, {"held": 2428, "target": 15000, "stop": "EADDRNOTAVAIL", "errors": {"EADDRNOTAVAIL": 1}, "nofile": [20000, 20000], "perSource": [{"source": "198.18.1.2", "held": 2428, "stop": "EADDRNOTAVAIL"}], "rampSeconds": 1.475}, {"held": 3922, "target": 15000, "stop": "EADDRNOTAVAIL", "errors": {"EADDRNOTAVAIL": 1}, "nofile": [20000, 20000], "perSource": [{"source": "198.18.1.2", "held": 3922, "stop": "EADDRNOTAVAIL"}], "rampSeconds": 1.477}], "rampSeconds": 1.542, "establishedAtHoldStart": 28232, "establishedAtHoldEnd": 28232, "holdSeconds": 1, "killedWorkers": 0}\n`;
export const SERVER_28K = `PROBE-RESULT provision-probe-5f0c2a9d41e7-server {"workers": [{"accepted": 3565, "peak": 3565, "errors": {}, "nofile": [20000, 20000]}, {"accepted": 3551, "peak": 3551, "errors": {}, "nofile": [20000, 20000]}, {"accepted": 3497, "peak": 3497, "errors": {}, "nofile": [20000, 20000]}, {"accepted": 3515, "peak": 3515, "errors": {}, "nofile": [20000, 20000]}, {"accepted": 3634, "peak": 3634, "errors": {}, "nofile": [20000, 20000]}, {"accepted": 3553, "peak": 3553, "errors": {}, "nofile": [20000, 20000]}, {"accepted": 3517, "peak": 3517, "errors": {}, "nofile": [20000, 20000]}, {"accepted": 3400, "peak": 3400, "errors": {}, "nofile": [20000, 20000]}], "netstat": {"ListenOverflows": 0, "ListenDrops": 0, "TCPReqQFullDrop": 0, "TCPReqQFullDoCookies": 0, "SyncookiesSent": 0}, "killedWorkers": 0}\n`;
/** Two source IPs, two processes, a bound of 5. */
export const CLIENT_TWO_SOURCES = `PROBE-RESULT provision-probe-0123456789ab-client {"workers": [{"held": 3, "target": 3, "stop": "bound", "errors": {}, "nofile": [20000, 20000], "perSource": [{"source": "198.18.1.2", "held": 2, "stop": null}, {"source": "198.18.1.200", "held": 1, "stop": null}], "rampSeconds": 0.001}, {"held": 2, "target": 2, "stop": "bound", "errors": {}, "nofile": [20000, 20000], "perSource": [{"source": "198.18.1.2", "held": 1, "stop": null}, {"source": "198.18.1.200", "held": 1, "stop": null}], "rampSeconds": 0.0}], "rampSeconds": 0.006, "establishedAtHoldStart": 5, "establishedAtHoldEnd": 5, "holdSeconds": 0, "killedWorkers": 0}\n`;
export const SERVER_TWO_SOURCES = `PROBE-RESULT provision-probe-0123456789ab-server {"workers": [{"accepted": 4, "peak": 4, "errors": {}, "nofile": [20000, 20000]}, {"accepted": 1, "peak": 1, "errors": {}, "nofile": [20000, 20000]}], "netstat": {"ListenOverflows": 0, "ListenDrops": 0, "TCPReqQFullDrop": 0, "TCPReqQFullDoCookies": 0, "SyncookiesSent": 0}, "killedWorkers": 0}\n`;
/** Nothing listening (the wait for the listener set to 1 s). */
export const CLIENT_REFUSED = `PROBE-RESULT provision-probe-0123456789ab-client {"workers": [{"held": 0, "target": 10, "stop": "ECONNREFUSED", "errors": {"ECONNREFUSED": 100}, "nofile": [20000, 20000], "perSource": [{"source": null, "held": 0, "stop": null}], "rampSeconds": 1.018}], "rampSeconds": 1.026, "establishedAtHoldStart": 0, "establishedAtHoldEnd": 0, "holdSeconds": 0, "killedWorkers": 0}\n`;
/** The client under \`ulimit -n 100\`, two processes of 150. */
export const CLIENT_EMFILE = `PROBE-RESULT provision-probe-0123456789ab-client {"workers": [{"held": 93, "target": 150, "stop": "EMFILE", "errors": {"EMFILE": 1}, "nofile": [100, 100], "perSource": [{"source": "198.18.1.2", "held": 93, "stop": null}], "rampSeconds": 0.009}, {"held": 93, "target": 150, "stop": "EMFILE", "errors": {"EMFILE": 1}, "nofile": [100, 100], "perSource": [{"source": "198.18.1.2", "held": 93, "stop": null}], "rampSeconds": 0.009}], "rampSeconds": 0.023, "establishedAtHoldStart": 186, "establishedAtHoldEnd": 186, "holdSeconds": 0, "killedWorkers": 0}\n`;

/** Captured on this machine: the client facts script over SSH on a fleet host, before and after a second address. */
export const ROUTE = `[{"dst":"198.18.1.3","dev":"eth0","prefsrc":"198.18.1.2","flags":[],"uid":0,"cache":[]}]`;
const LO = `{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"noqueue","operstate":"UNKNOWN","group":"default","txqlen":1000,"link_type":"loopback","address":"00:00:00:00:00:00","broadcast":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host","label":"lo","valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6","local":"::1","prefixlen":128,"scope":"host","valid_life_time":4294967295,"preferred_life_time":4294967295}]}`;
export const ETH0_TWO = `{"ifindex":2,"link_index":1105,"ifname":"eth0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"qdisc":"noqueue","operstate":"UP","group":"default","txqlen":1000,"link_type":"ether","address":"e2:a5:66:48:d7:64","broadcast":"ff:ff:ff:ff:ff:ff","link_netnsid":0,"addr_info":[{"family":"inet","local":"198.18.1.2","prefixlen":24,"scope":"global","label":"eth0","valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet","local":"198.18.1.200","prefixlen":24,"scope":"global","secondary":true,"label":"eth0","valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6","local":"fe80::e0a5:66ff:fe48:d764","prefixlen":64,"scope":"link","valid_life_time":4294967295,"preferred_life_time":4294967295}]}`;
export const ETH0_ONE = ETH0_TWO.replace(
  `{"family":"inet","local":"198.18.1.200","prefixlen":24,"scope":"global","secondary":true,"label":"eth0","valid_life_time":4294967295,"preferred_life_time":4294967295},`,
  "",
);

/**
 * What the facts scripts print: one record per key (src/remote/records.ts), values as the hosts
 * printed them. A value of undefined leaves the key out, as a script that never got to it.
 */
export function factRecords(values: Record<string, string | undefined>, nonce = "n0nce"): string {
  return Object.entries(values)
    .filter((e): e is [string, string] => e[1] !== undefined)
    .map(([key, value]) => `@@${nonce} ${key} ok\n${Buffer.from(value).toString("base64")}\n`)
    .join("");
}

/** The ip-addresses probe's output: `ip -j addr show` (the links captured above), then its promote_secondaries lines. */
export function ipAddressesOutput(...links: string[]): string {
  return `[${links.join(",")}]\n\n# promote_secondaries\nall 0\ndefault 0\neth0 0\nlo 0\n`;
}

export function clientOutput(
  range: string,
  reserved: string,
  eth0: string,
  nofile = "20000",
  overrides: Record<string, string | undefined> = {},
): string {
  return factRecords({
    nr_open: "1048576 ",
    file_max: "2466193 ",
    nofile_soft: nofile,
    nofile_hard: nofile,
    python3: "/usr/bin/python3",
    port_range: `${range} `,
    reserved_ports: `${reserved} `,
    route: ROUTE,
    addresses: ipAddressesOutput(LO, eth0),
    ...overrides,
  });
}

export function serverOutput(overrides: Record<string, string | undefined> = {}): string {
  return factRecords({
    nr_open: "1048576 ",
    file_max: "2466193 ",
    nofile_soft: "20000",
    nofile_hard: "20000",
    python3: "/usr/bin/python3",
    somaxconn: "4096 ",
    max_syn_backlog: "2048 ",
    syncookies: "1 ",
    abort_on_overflow: "0 ",
    port_listeners: "0",
    ...overrides,
  });
}

export const SERVER_OUTPUT = serverOutput();
