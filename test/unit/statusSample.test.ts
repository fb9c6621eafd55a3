import { execFile, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { STATUS_SYSCTLS, statusScript } from "../../src/status/collect.js";
import { decodeEndpoint } from "../../src/status/endpoint.js";
import {
  CONNTRACK_COUNTERS,
  NETSTAT_COUNTERS,
  parseConntrackStat,
  parseStatusOutput,
  StatusParseError,
  type HostSample,
} from "../../src/status/sample.js";
import { newNonce } from "../../src/remote/records.js";

const N = "5eed0f5eed0f5eed";
const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");

// ---------------------------------------------------------------------------------------------
// decodeEndpoint
// ---------------------------------------------------------------------------------------------

describe("decodeEndpoint", () => {
  it.each<[string, string, boolean, string, number, string]>([
    // /proc/net/tcp on x86: each 32-bit word in host (little-endian) order, the port as a number.
    ["IPv4 loopback, little-endian", "0100007F:1F90", true, "127.0.0.1", 8080, "127.0.0.1:8080"],
    ["IPv4 any address", "00000000:0050", true, "0.0.0.0", 80, "0.0.0.0:80"],
    ["IPv4 198.18.0.3, little-endian", "030012C6:1451", true, "198.18.0.3", 5201, "198.18.0.3:5201"],
    ["lower-case hex", "030012c6:1451", true, "198.18.0.3", 5201, "198.18.0.3:5201"],
    ["the highest port", "0100007F:FFFF", true, "127.0.0.1", 65535, "127.0.0.1:65535"],
    // On a big-endian host (s390x) the word is already in network order; the port is not swapped.
    ["IPv4 loopback, big-endian", "7F000001:1F90", false, "127.0.0.1", 8080, "127.0.0.1:8080"],
    ["IPv4 198.18.0.3, big-endian", "C6120003:1451", false, "198.18.0.3", 5201, "198.18.0.3:5201"],
    ["IPv6 ::1, little-endian", "00000000000000000000000001000000:1F90", true, "::1", 8080, "[::1]:8080"],
    ["IPv6 ::, little-endian", "00000000000000000000000000000000:01BB", true, "::", 443, "[::]:443"],
    [
      "IPv6 2001:db8::1, little-endian",
      "B80D0120000000000000000001000000:01BB",
      true,
      "2001:db8::1",
      443,
      "[2001:db8::1]:443",
    ],
    [
      "IPv6 2001:db8::1, big-endian",
      "20010DB8000000000000000000000001:01BB",
      false,
      "2001:db8::1",
      443,
      "[2001:db8::1]:443",
    ],
    [
      "IPv6 with the longest zero run compressed, not the first one",
      "B80D0120000000000000010000000000:0016",
      true,
      "2001:db8:0:0:1::",
      22,
      "[2001:db8:0:0:1::]:22",
    ],
    [
      "IPv6 without zero groups, leading zeros of each group dropped",
      "B80D01200300020005000400BA000700:0016",
      true,
      "2001:db8:2:3:4:5:7:ba",
      22,
      "[2001:db8:2:3:4:5:7:ba]:22",
    ],
    [
      "IPv6 link-local",
      "000080FE00000000FF27000AA1664EFE:0016",
      true,
      "fe80::a00:27ff:fe4e:66a1",
      22,
      "[fe80::a00:27ff:fe4e:66a1]:22",
    ],
    [
      "IPv4-mapped IPv6 reads as IPv4, little-endian",
      "0000000000000000FFFF0000030012C6:1451",
      true,
      "198.18.0.3",
      5201,
      "198.18.0.3:5201",
    ],
    [
      "IPv4-mapped IPv6 reads as IPv4, big-endian",
      "00000000000000000000FFFFC6120003:1451",
      false,
      "198.18.0.3",
      5201,
      "198.18.0.3:5201",
    ],
    ["IPv4-mapped loopback", "0000000000000000FFFF00000100007F:0050", true, "127.0.0.1", 80, "127.0.0.1:80"],
  ])("%s: %s", (_what, hex, littleEndian, address, port, name) => {
    expect(decodeEndpoint(hex, littleEndian)).toEqual({ address, port, name });
  });

  it("reads the same address from either byte order when the words are swapped accordingly", () => {
    const words = (hex: string) => hex.match(/.{8}/g)!;
    const swap = (word: string) => word.match(/../g)!.reverse().join("");
    for (const be of ["C6120003", "20010DB8000000000000000000000001", "00000000000000000000FFFF0A000005"]) {
      const le = words(be).map(swap).join("");
      expect(decodeEndpoint(`${le}:0050`, true)).toEqual(decodeEndpoint(`${be}:0050`, false));
    }
  });

  it.each<[string, string, string]>([
    // Not ::ffff:0:0/96: the first 80 bits are not all 0.
    ["2001:db8::ffff:0:c612:3", "20010DB800000000FFFF0000C6120003", "[2001:db8::ffff:0:c612:3]:80"],
    // IPv4-compatible (::/96, deprecated) is not IPv4-mapped: it stays IPv6.
    ["::c612:3", "000000000000000000000000C6120003", "[::c612:3]:80"],
    // ffff in bytes 8-9 rather than 10-11.
    ["::ffff:0:c612:3", "0000000000000000FFFF0000C6120003", "[::ffff:0:c612:3]:80"],
  ])("does not read %s as an IPv4-mapped address", (_what, be, name) => {
    expect(decodeEndpoint(`${be}:0050`, false)?.name).toBe(name);
  });

  it.each<[string, string]>([
    ["empty", ""],
    ["no port", "0100007F"],
    ["a port of 3 digits", "0100007F:50"],
    ["a port of 5 digits", "0100007F:00050"],
    ["an address of 7 digits", "100007F:1F90"],
    ["an address of 16 digits (neither IPv4 nor IPv6)", "0000000001000000:1F90"],
    ["an address of 31 digits", "0000000000000000000000001000000:1F90"],
    ["non-hex digits", "0100007G:1F90"],
    ["a dotted address", "127.0.0.1:8080"],
    ["a trailing space", "0100007F:1F90 "],
    ["two colons", "0100007F::1F90"],
  ])("rejects %s", (_what, hex) => {
    expect(decodeEndpoint(hex, true)).toBeNull();
    expect(decodeEndpoint(hex, false)).toBeNull();
  });
});

// ---------------------------------------------------------------------------------------------
// A host's stdout, record by record, as the status script prints it
// ---------------------------------------------------------------------------------------------

/** TcpExt names as /proc/net/netstat prints them (a shortened but ordered list of a 6.1 kernel). */
const TCPEXT = [
  "SyncookiesSent",
  "SyncookiesRecv",
  "SyncookiesFailed",
  "EmbryonicRsts",
  "PruneCalled",
  "TW",
  "TWRecycled",
  "TWKilled",
  "DelayedACKs",
  "ListenOverflows",
  "ListenDrops",
  "TCPHPHits",
  "TCPPureAcks",
  "TCPBacklogDrop",
  "PFMemallocDrop",
  "TCPMinTTLDrop",
  "TCPReqQFullDoCookies",
  "TCPReqQFullDrop",
  "TCPRetransFail",
];

/** /proc/net/netstat with the given TcpExt values (0 for the rest), IpExt and MPTcpExt around it. */
function netstat(values: Partial<Record<string, number>>, names: readonly string[] = TCPEXT): string {
  return [
    `TcpExt: ${names.join(" ")}`,
    `TcpExt: ${names.map((n) => values[n] ?? (n === "TCPHPHits" ? 48213 : 0)).join(" ")}`,
    "IpExt: InNoRoutes InTruncatedPkts InMcastPkts OutMcastPkts InBcastPkts OutBcastPkts InOctets OutOctets",
    "IpExt: 0 0 0 0 0 0 98132713 77182732",
    "MPTcpExt: MPCapableSYNRX MPCapableSYNTX",
    "MPTcpExt: 0 0",
    "",
  ].join("\n");
}

/** /proc/net/stat/nf_conntrack of a kernel 6.1: the header, then one row per CPU, in hex. */
const CONNTRACK_HEADER =
  "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart";
function conntrackStat(rows: Array<Partial<Record<string, number>>>): string {
  const names = CONNTRACK_HEADER.split(/\s+/);
  const hex = (v: number) => v.toString(16).padStart(8, "0");
  const lines = rows.map((row) => {
    const v = names.map((n) => hex(row[n] ?? 0));
    // The kernel prints the first and thirteenth values followed by two spaces, as in the header.
    return `${v[0]}  ${v.slice(1, 13).join(" ")}  ${v.slice(13).join(" ")}`;
  });
  return [CONNTRACK_HEADER, ...lines, ""].join("\n");
}

const SYSCTLS = [
  "/proc/sys/net/ipv4/ip_local_port_range:32768\t60999",
  // grep -H '' prints an empty file as the path and a colon.
  "/proc/sys/net/ipv4/ip_local_reserved_ports:",
  "/proc/sys/net/ipv4/tcp_max_tw_buckets:262144",
  "/proc/sys/net/ipv4/tcp_max_orphans:65536",
  "/proc/sys/net/core/somaxconn:4096",
  "/proc/sys/net/ipv4/tcp_max_syn_backlog:1024",
  "/proc/sys/net/ipv4/tcp_syncookies:1",
  "/proc/sys/net/ipv4/tcp_keepalive_time:600",
  "/proc/sys/net/ipv4/tcp_keepalive_intvl:60",
  "/proc/sys/net/ipv4/tcp_keepalive_probes:5",
  "/proc/sys/fs/file-nr:10240\t0\t9223372036854775807",
  "/proc/sys/fs/file-max:9223372036854775807",
  "/proc/sys/net/netfilter/nf_conntrack_count:5120",
  "/proc/sys/net/netfilter/nf_conntrack_max:65536",
  "",
].join("\n");

const SOCKSTAT = [
  "sockets: used 1312",
  "TCP: inuse 140 orphan 3 tw 55 alloc 152 mem 40",
  "UDP: inuse 4 mem 2",
  "UDPLITE: inuse 0",
  "RAW: inuse 0",
  "FRAG: inuse 0 memory 0",
  "",
].join("\n");

const PROCESSES = [
  "S 212 5310",
  "P 0.901000 1234 901 1000 4096 nginx: worker process",
  "P 0.020000 88 20 1000 1000 sshd",
  "P 0.004883 4242 5 1024 unlimited java",
  "U 230 18",
  "",
].join("\n");

const SOCKETS = [
  // 0.0.0.0:80 with 3 connections waiting for accept(), [::]:443.
  "L 00000000:0050 00000003",
  "L 00000000000000000000000000000000:01BB 00000000",
  "T 01 120",
  "T 06 40",
  "T 03 3",
  // 198.18.0.3:5201 from tcp and, IPv4-mapped, from tcp6: one destination.
  "O 030012C6:1451 50 10 1",
  "O 0000000000000000FFFF0000030012C6:1451 30 5 2",
  "O B80D0120000000000000000001000000:01BB 7 0 1",
  // Half-open connections on port 80, to two of the host's addresses.
  "Y 0500000A:0050 2",
  "Y 0100007F:0050 1",
  "",
].join("\n");

/** `LC_ALL=C ss -ltn` of iproute2 6.1: the header runs "Port" into "Process"; lines padded. */
const SS_LTN = [
  "State  Recv-Q Send-Q Local Address:Port Peer Address:PortProcess",
  "LISTEN 3      511          0.0.0.0:80        0.0.0.0:*          ",
  "LISTEN 0      4096            [::]:443          [::]:*          ",
  "",
].join("\n");

const KEEPALIVE = [
  "K 120 30 12 2",
  "I 1200000 0 10.0.0.5:43210 198.18.0.3:5201",
  "I 950000 1 10.0.0.5:43211 198.18.0.3:5201",
  "",
].join("\n");

type Rec = [id: string, status: string, payload: string];

function fixtureRecords(): Rec[] {
  return [
    ["netstat0", "ok", netstat({ ListenOverflows: 12, ListenDrops: 12 })],
    [
      "conntrack0",
      "ok",
      conntrackStat([
        { entries: 0x1400, drop: 0x10, insert_failed: 0xfffffffe, found: 9 },
        { entries: 0x1400, drop: 0x1, early_drop: 0x4 },
      ]),
    ],
    ["endian", "ok", "1\n"],
    ["sysctls", "ok", SYSCTLS],
    ["sockstat", "ok", SOCKSTAT],
    ["processes", "ok", PROCESSES],
    ["sockets", "ok", SOCKETS],
    ["listeners", "ok", SS_LTN],
    ["keepalive", "ok", KEEPALIVE],
    ["netstat1", "ok", netstat({ ListenOverflows: 19, ListenDrops: 19 })],
    [
      "conntrack1",
      "ok",
      conntrackStat([
        // insert_failed wrapped on CPU 0 (0xfffffffe → 0x1): no increase is read from it.
        { entries: 0x1401, drop: 0x12, insert_failed: 0x1, found: 11 },
        { entries: 0x1401, drop: 0x2, early_drop: 0x4 },
      ]),
    ],
    ["window", "ok", "103\n"],
  ];
}

/** The records as the script prints them: `@@nonce id status`, then the payload in base64 on one line. */
function stdoutOf(records: readonly Rec[], nonce = N): string {
  return records.map(([id, status, payload]) => `@@${nonce} ${id} ${status}\n${b64(payload)}\n`).join("");
}

function replaced(id: string, status: string, payload: string): Rec[] {
  const records = fixtureRecords();
  const i = records.findIndex((r) => r[0] === id);
  if (i < 0) throw new Error(`no record ${id}`);
  records[i] = [id, status, payload];
  return records;
}

const parse = (records: readonly Rec[]) => parseStatusOutput(stdoutOf(records), N);

const EXPECTED: HostSample = {
  windowSeconds: 1.03,
  sysctl: {
    "net/ipv4/ip_local_port_range": "32768\t60999",
    "net/ipv4/ip_local_reserved_ports": "",
    "net/ipv4/tcp_max_tw_buckets": "262144",
    "net/ipv4/tcp_max_orphans": "65536",
    "net/core/somaxconn": "4096",
    "net/ipv4/tcp_max_syn_backlog": "1024",
    "net/ipv4/tcp_syncookies": "1",
    "net/ipv4/tcp_keepalive_time": "600",
    "net/ipv4/tcp_keepalive_intvl": "60",
    "net/ipv4/tcp_keepalive_probes": "5",
    "fs/file-nr": "10240\t0\t9223372036854775807",
    "fs/file-max": "9223372036854775807",
    "net/netfilter/nf_conntrack_count": "5120",
    "net/netfilter/nf_conntrack_max": "65536",
  },
  portRange: { from: 32768, to: 60999 },
  reservedPorts: [],
  processes: {
    read: 212,
    fds: 5310,
    unreadable: 18,
    worst: [
      { pid: 1234, name: "nginx: worker process", fds: 901, soft: 1000, hard: 4096 },
      { pid: 88, name: "sshd", fds: 20, soft: 1000, hard: 1000 },
      { pid: 4242, name: "java", fds: 5, soft: 1024, hard: null },
    ],
  },
  // sockstat counts TIME_WAIT of IPv4 and IPv6: it wins over the table's count.
  timeWait: 55,
  orphans: 3,
  socketsByState: { ESTABLISHED: 120, TIME_WAIT: 40, SYN_RECV: 3 },
  destinations: [
    { endpoint: "198.18.0.3:5201", sockets: 80, timeWait: 15, sources: 2 },
    { endpoint: "[2001:db8::1]:443", sockets: 7, timeWait: 0, sources: 1 },
  ],
  listeners: [
    { endpoint: "0.0.0.0:80", port: 80, acceptQueue: 3, backlog: 511, synQueue: 3 },
    { endpoint: "[::]:443", port: 443, acceptQueue: 0, backlog: 4096, synQueue: 0 },
  ],
  keepalive: {
    detectionSeconds: 600 + 60 * 5,
    established: 120,
    withKeepalive: 30,
    idle: 12,
    idleWithKeepalive: 2,
    longestIdle: [
      { idleSeconds: 1200, keepalive: false, local: "10.0.0.5:43210", peer: "198.18.0.3:5201" },
      { idleSeconds: 950, keepalive: true, local: "10.0.0.5:43211", peer: "198.18.0.3:5201" },
    ],
  },
  netstat: { ListenOverflows: 7, ListenDrops: 7, TCPBacklogDrop: 0, TCPReqQFullDrop: 0 },
  conntrack: { drop: 3, early_drop: 0, insert_failed: 0 },
};

describe("parseStatusOutput: a complete host", () => {
  it("decodes every record of the script's output", () => {
    expect(parse(fixtureRecords())).toEqual(EXPECTED);
  });

  it("finds its records among other output (a login banner, sudo's lecture) and ignores another nonce's", () => {
    const stdout = [
      "Welcome to Ubuntu 22.04 LTS",
      `@@0000000000000000 window ok\n${b64("999999\n")}`,
      stdoutOf(fixtureRecords()),
      "",
    ].join("\n");
    expect(parseStatusOutput(stdout, N)).toEqual(EXPECTED);
  });

  it("keeps only the sysctls it asked for", () => {
    const sysctls = `${SYSCTLS}/proc/sys/net/ipv4/tcp_fin_timeout:60\n/etc/passwd:root:x:0:0\n`;
    const s = parse(replaced("sysctls", "ok", sysctls));
    expect(Object.keys(s.sysctl).sort()).toEqual([...STATUS_SYSCTLS].sort());
  });

  it.each<[string, string, HostSample["reservedPorts"]]>([
    ["an empty reserved list", "", []],
    [
      "one port and a range",
      "8080,40000-40009",
      [
        { from: 8080, to: 8080 },
        { from: 40000, to: 40009 },
      ],
    ],
    [
      "the kernel's sorted list with port 0",
      "0,22,80-81",
      [
        { from: 0, to: 0 },
        { from: 22, to: 22 },
        { from: 80, to: 81 },
      ],
    ],
  ])("reads the reserved ports: %s", (_what, list, expected) => {
    const sysctls = SYSCTLS.replace("ip_local_reserved_ports:", `ip_local_reserved_ports:${list}`);
    expect(parse(replaced("sysctls", "ok", sysctls)).reservedPorts).toEqual(expected);
  });

  it.each<[string, string, HostSample["portRange"]]>([
    ["a tab, as the kernel prints it", "1024\t65535", { from: 1024, to: 65535 }],
    ["spaces", "2048 65535", { from: 2048, to: 65535 }],
    ["not two numbers", "garbage", null],
  ])("reads the port range with %s", (_what, range, expected) => {
    const sysctls = SYSCTLS.replace("ip_local_port_range:32768\t60999", `ip_local_port_range:${range}`);
    expect(parse(replaced("sysctls", "ok", sysctls)).portRange).toEqual(expected);
  });

  it("reads no port range when the sysctl line is missing", () => {
    const sysctls = SYSCTLS.split("\n")
      .filter((l) => !l.includes("ip_local_port_range"))
      .join("\n");
    expect(parse(replaced("sysctls", "ok", sysctls)).portRange).toBeNull();
  });

  it("reads a big-endian host's addresses with its byte order", () => {
    const sockets = [
      "L 00000000:0050 00000000",
      "O C6120003:1451 4 1 1",
      "O 00000000000000000000FFFFC6120003:1451 2 0 1",
      "O 20010DB8000000000000000000000001:01BB 1 0 1",
      "Y 0A000005:0050 2",
      "",
    ].join("\n");
    const records = replaced("sockets", "ok", sockets).map((r): Rec =>
      r[0] === "endian" ? ["endian", "ok", "256\n"] : r,
    );
    const s = parse(records);
    expect(s.destinations).toEqual([
      { endpoint: "198.18.0.3:5201", sockets: 6, timeWait: 1, sources: 1 },
      { endpoint: "[2001:db8::1]:443", sockets: 1, timeWait: 0, sources: 1 },
    ]);
    expect(s.listeners.find((l) => l.port === 80)?.synQueue).toBe(2);
  });

  it("takes the listeners from /proc, without backlogs, and no keepalive scan when ss is missing", () => {
    const records = fixtureRecords().map((r): Rec => {
      if (r[0] === "listeners") return ["listeners", "missing", ""];
      if (r[0] === "keepalive") return ["keepalive", "missing", "ss is not installed (package iproute2)\n"];
      return r;
    });
    const s = parse(records);
    expect(s.listeners).toEqual([
      { endpoint: "0.0.0.0:80", port: 80, acceptQueue: 3, backlog: null, synQueue: 3 },
      { endpoint: "[::]:443", port: 443, acceptQueue: 0, backlog: null, synQueue: 0 },
    ]);
    expect(s.keepalive).toBeNull();
  });

  it("reads no conntrack counters when /proc/net/stat/nf_conntrack is absent", () => {
    const records = fixtureRecords().map((r): Rec => (r[0].startsWith("conntrack") ? [r[0], "absent", ""] : r));
    expect(parse(records).conntrack).toBeNull();
  });

  it("reads no conntrack counters when it is absent in one of the two readings (module loaded meanwhile)", () => {
    expect(parse(replaced("conntrack0", "absent", "")).conntrack).toBeNull();
  });

  it("falls back to the table's TIME_WAIT count when sockstat says nothing", () => {
    const s = parse(replaced("sockstat", "ok", ""));
    expect(s.timeWait).toBe(40);
    expect(s.orphans).toBeNull();
  });

  it("reads no TIME_WAIT at all when neither sockstat nor the table has any", () => {
    const sockets = SOCKETS.split("\n")
      .filter((l) => l !== "T 06 40")
      .join("\n");
    const records = replaced("sockets", "ok", sockets).map((r): Rec =>
      r[0] === "sockstat" ? ["sockstat", "ok", ""] : r,
    );
    expect(parse(records).timeWait).toBeNull();
  });

  it("counts an unknown TCP state by its number", () => {
    expect(parse(replaced("sockets", "ok", `${SOCKETS}T 0D 1\n`)).socketsByState["state 0D"]).toBe(1);
  });
});

describe("parseStatusOutput: counters over the window", () => {
  it.each<[string, string, string, Partial<HostSample["netstat"]>]>([
    [
      "ListenOverflows and ListenDrops rising",
      netstat({ ListenOverflows: 100, ListenDrops: 101 }),
      netstat({ ListenOverflows: 150, ListenDrops: 151 }),
      { ListenOverflows: 50, ListenDrops: 50, TCPBacklogDrop: 0, TCPReqQFullDrop: 0 },
    ],
    [
      "TCPBacklogDrop and TCPReqQFullDrop rising",
      netstat({ TCPBacklogDrop: 1, TCPReqQFullDrop: 0 }),
      netstat({ TCPBacklogDrop: 4, TCPReqQFullDrop: 2 }),
      { ListenOverflows: 0, ListenDrops: 0, TCPBacklogDrop: 3, TCPReqQFullDrop: 2 },
    ],
    [
      "a counter that went down (reset) counts as no increase",
      netstat({ ListenOverflows: 100 }),
      netstat({ ListenOverflows: 3 }),
      { ListenOverflows: 0 },
    ],
    [
      "a counter this kernel does not have is null",
      netstat(
        {},
        TCPEXT.filter((n) => n !== "TCPReqQFullDrop"),
      ),
      netstat(
        {},
        TCPEXT.filter((n) => n !== "TCPReqQFullDrop"),
      ),
      { ListenOverflows: 0, TCPReqQFullDrop: null },
    ],
    ["an unreadable /proc/net/netstat: every counter null", "", "", { ListenOverflows: null, TCPBacklogDrop: null }],
  ])("%s", (_what, before, after, expected) => {
    const records = replaced("netstat0", "ok", before).map((r): Rec =>
      r[0] === "netstat1" ? ["netstat1", "ok", after] : r,
    );
    const s = parse(records);
    expect(s.netstat).toMatchObject(expected);
    expect(Object.keys(s.netstat).sort()).toEqual([...NETSTAT_COUNTERS].sort());
  });

  it.each<
    [string, Array<Partial<Record<string, number>>>, Array<Partial<Record<string, number>>>, HostSample["conntrack"]]
  >([
    [
      "per-CPU rows summed",
      [
        { drop: 1, early_drop: 2, insert_failed: 3 },
        { drop: 10, early_drop: 20, insert_failed: 30 },
      ],
      [
        { drop: 2, early_drop: 4, insert_failed: 6 },
        { drop: 11, early_drop: 22, insert_failed: 33 },
      ],
      { drop: 2, early_drop: 4, insert_failed: 6 },
    ],
    [
      "a counter that wrapped (0xffffff00 → 0x10) counts as 0, not as a huge negative or positive number",
      [{ drop: 0xffffff00 }],
      [{ drop: 0x10 }],
      { drop: 0, early_drop: 0, insert_failed: 0 },
    ],
    [
      "values above 0x7fffffff read as unsigned",
      [{ early_drop: 0x80000000 }],
      [{ early_drop: 0x80000005 }],
      { drop: 0, early_drop: 5, insert_failed: 0 },
    ],
    ["a header without rows (no CPU printed)", [], [], { drop: 0, early_drop: 0, insert_failed: 0 }],
  ])("conntrack: %s", (_what, before, after, expected) => {
    const records = replaced("conntrack0", "ok", conntrackStat(before)).map((r): Rec =>
      r[0] === "conntrack1" ? ["conntrack1", "ok", conntrackStat(after)] : r,
    );
    expect(parse(records).conntrack).toEqual(expected);
    expect(Object.keys(parse(records).conntrack!).sort()).toEqual([...CONNTRACK_COUNTERS].sort());
  });

  it("sums every CPU's row of /proc/net/stat/nf_conntrack by column name", () => {
    const sums = parseConntrackStat(conntrackStat([{ found: 0xa, drop: 1 }, { found: 0x10, drop: 2 }, { found: 1 }]));
    expect(sums.get("found")).toBe(27);
    expect(sums.get("drop")).toBe(3);
    expect(sums.get("search_restart")).toBe(0);
  });
});

describe("parseStatusOutput: a missing or malformed record", () => {
  const IDS = fixtureRecords().map((r) => r[0]);

  it.each(IDS)("names the missing %s record", (id) => {
    const records = fixtureRecords().filter((r) => r[0] !== id);
    expect(() => parse(records)).toThrow(StatusParseError);
    expect(() => parse(records)).toThrow(new RegExp(`\\b${id} record\\b`));
  });

  it("fails on output cut off before the window record (the script was killed)", () => {
    const full = stdoutOf(fixtureRecords());
    const cut = full.slice(0, full.indexOf(`@@${N} window`));
    expect(() => parseStatusOutput(cut, N)).toThrow(/window record/);
  });

  it("does not read another nonce's records", () => {
    expect(() => parseStatusOutput(stdoutOf(fixtureRecords(), "ffffffffffffffff"), N)).toThrow(StatusParseError);
  });

  it.each<[string, string, string, RegExp]>([
    ["an unknown line in the process table", "processes", `${PROCESSES}X 1 2\n`, /process table/],
    ["a process line with too few fields", "processes", "S 1 2\nP 0.5 1 2\n", /process table/],
    [
      "a process line whose fd count is not a number",
      "processes",
      "S 1 2\nP 0.5 1234 many 1024 1024 nginx\n",
      /process table/,
    ],
    [
      "a process line whose pid is not a number",
      "processes",
      "S 1 2\nP 0.5 nginx 10 1024 1024 nginx\n",
      /process table/,
    ],
    ["a totals line that is not numbers", "processes", "S all 2\n", /process table/],
    ["an unknown line in the socket table", "sockets", `${SOCKETS}Q 1 2\n`, /socket table/],
    ["an undecodable destination", "sockets", "O 127.0.0.1:80 1 0 1\n", /socket table/],
    ["a destination whose count is not a number", "sockets", "O 0100007F:0050 x 0 1\n", /socket table/],
    ["a destination without its source count", "sockets", "O 0100007F:0050 1 0\n", /socket table/],
    ["a listener whose queue is not hex", "sockets", "L 00000000:0050 zz\n", /socket table/],
    ["a listener without its queue", "sockets", "L 00000000:0050\n", /socket table/],
    ["a state count that is negative", "sockets", "T 01 -1\n", /socket table/],
    ["a SYN_RECV line without a count", "sockets", "Y 0100007F:0050\n", /socket table/],
    [
      "a line of ss that is not a listener",
      "listeners",
      "State Recv-Q\nESTAB 0 0 10.0.0.1:22 10.0.0.2:5000\n",
      /ss -ltn/,
    ],
    [
      "ss printing an error instead of a table",
      "listeners",
      "Cannot open netlink socket: Protocol not supported\n",
      /ss -ltn/,
    ],
    ["a keepalive scan without totals", "keepalive", "I 1000 0 a:1 b:2\n", /no totals/],
    ["a keepalive totals line with a word in it", "keepalive", "K 1 2 x 4\n", /keepalive scan/],
    ["an unknown line in the keepalive scan", "keepalive", "K 1 1 0 0\nZ\n", /keepalive scan/],
    ["a conntrack row with a column missing", "conntrack1", `${CONNTRACK_HEADER}\n00000000 00000001\n`, /nf_conntrack/],
    [
      "a conntrack row that is not hex",
      "conntrack0",
      conntrackStat([{}]).replace("00000000  ", "0000000g  "),
      /nf_conntrack/,
    ],
    ["an od output that is neither byte order", "endian", "2\n", /byte order/],
    ["a window that is not a number", "window", "1.5 s\n", /window/],
  ])("fails on %s", (_what, id, payload, message) => {
    const records = replaced(id, "ok", payload);
    expect(() => parse(records)).toThrow(StatusParseError);
    expect(() => parse(records)).toThrow(message);
  });

  it("fails on a window record without its number (cut off after the record line)", () => {
    // `@@nonce window ok` as the last line: the host was cut off before printing the number.
    const full = stdoutOf(fixtureRecords());
    const cut = full.slice(0, full.indexOf(`@@${N} window`)) + `@@${N} window ok\n`;
    expect(() => parseStatusOutput(cut, N)).toThrow(StatusParseError);
  });
});

// ---------------------------------------------------------------------------------------------
// The real script, on this machine
// ---------------------------------------------------------------------------------------------

const run = promisify(execFile);

describe("the status script on this machine", () => {
  const CONNECTIONS = 20;
  /** Of them, with SO_KEEPALIVE. */
  const KEEPALIVE_ON = 5;
  let server: Server;
  let port: number;
  const clients: Socket[] = [];
  const accepted: Socket[] = [];

  beforeAll(async () => {
    server = createServer((s) => accepted.push(s));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ port: 0, host: "127.0.0.1", backlog: 7 }, resolve);
    });
    port = (server.address() as AddressInfo).port;
    for (let i = 0; i < CONNECTIONS; i++) {
      clients.push(
        await new Promise<Socket>((resolve, reject) => {
          const c = createConnection({ port, host: "127.0.0.1" }, () => resolve(c));
          c.once("error", reject);
        }),
      );
    }
    for (const c of clients.slice(0, KEEPALIVE_ON)) c.setKeepAlive(true, 60_000);
    // Every connection accepted: none is waiting in the queue, so the queue check below is exact.
    const deadline = Date.now() + 5000;
    while (accepted.length < CONNECTIONS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  });

  afterAll(async () => {
    for (const c of [...clients, ...accepted]) c.destroy();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  });

  async function sampleHere(windowSeconds: number): Promise<{ sample: HostSample; stdout: string; ms: number }> {
    const nonce = newNonce();
    const started = Date.now();
    const { stdout } = await run("sh", ["-c", statusScript(nonce, windowSeconds)], {
      encoding: "utf8",
      timeout: 20_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    return { sample: parseStatusOutput(stdout, nonce), stdout, ms: Date.now() - started };
  }

  it("prints output the parser accepts, with sane numbers", async () => {
    const ownFds = readdirSync("/proc/self/fd").length;
    const { sample: s, ms } = await sampleHere(0.2);
    expect(s.windowSeconds).toBeGreaterThanOrEqual(0.2);
    expect(s.windowSeconds * 1000).toBeLessThanOrEqual(ms + 20);
    expect(s.portRange).not.toBeNull();
    expect(s.portRange!.from).toBeLessThanOrEqual(s.portRange!.to);
    expect(s.processes.read).toBeGreaterThan(0);
    expect(s.processes.fds).toBeGreaterThanOrEqual(ownFds);
    // As root every fd table is readable.
    if (process.getuid?.() === 0) expect(s.processes.unreadable).toBe(0);
    const me = s.processes.worst.find((p) => p.pid === process.pid);
    if (me) expect(me.fds).toBeGreaterThanOrEqual(2 * CONNECTIONS);
    for (const p of s.processes.worst) {
      expect(p.fds).toBeLessThanOrEqual(p.soft);
      expect(Number.isInteger(p.pid) && p.pid > 0).toBe(true);
    }
    const ratios = s.processes.worst.map((p) => p.fds / p.soft);
    expect(ratios).toEqual([...ratios].sort((a, b) => b - a));
    for (const c of NETSTAT_COUNTERS) expect(s.netstat[c] === null || s.netstat[c]! >= 0).toBe(true);
    expect(s.netstat.ListenOverflows).not.toBeNull();
    expect(Object.keys(s.sysctl)).toEqual(expect.arrayContaining(["fs/file-nr", "net/core/somaxconn"]));
    expect(s.keepalive).not.toBeNull();
    expect(s.keepalive!.detectionSeconds).toBeGreaterThan(0);
  });

  it("sees the test's listener with its backlog of 7 and the connections held to it", async () => {
    const { sample: s } = await sampleHere(0.2);
    const mine = s.listeners.find((l) => l.endpoint === `127.0.0.1:${port}`);
    expect(mine).toEqual({ endpoint: `127.0.0.1:${port}`, port, acceptQueue: 0, backlog: 7, synQueue: 0 });
    const destination = s.destinations.find((d) => d.endpoint === `127.0.0.1:${port}`);
    expect(destination).toBeDefined();
    expect(destination!.sockets).toBeGreaterThanOrEqual(CONNECTIONS);
    expect(destination!.sources).toBe(1);
    // The accepted side's local port is the listening port: it is inbound, not a destination.
    const clientPorts = new Set(clients.map((c) => c.localPort));
    for (const d of s.destinations) {
      const p = Number(d.endpoint.slice(d.endpoint.lastIndexOf(":") + 1));
      if (d.endpoint.startsWith("127.0.0.1:")) expect(clientPorts.has(p)).toBe(false);
    }
    expect(s.socketsByState.ESTABLISHED).toBeGreaterThanOrEqual(2 * CONNECTIONS);
    expect(s.keepalive!.established).toBeGreaterThanOrEqual(2 * CONNECTIONS);
    expect(s.keepalive!.withKeepalive).toBeGreaterThanOrEqual(KEEPALIVE_ON);
    expect(s.keepalive!.withKeepalive).toBeLessThanOrEqual(s.keepalive!.established);
  });

  it("counts the TIME_WAIT sockets of connections this side closed, per destination", async () => {
    const CLOSED = 5;
    const before = (await sampleHere(0)).sample.destinations.find((d) => d.endpoint === `127.0.0.1:${port}`);
    const closing: Socket[] = [];
    for (let i = 0; i < CLOSED; i++) {
      closing.push(
        await new Promise<Socket>((resolve, reject) => {
          const c = createConnection({ port, host: "127.0.0.1" }, () => resolve(c));
          c.once("error", reject);
        }),
      );
    }
    // This side closes first, so this side's socket waits in TIME_WAIT.
    await Promise.all(closing.map((c) => new Promise((resolve) => c.end(() => c.once("close", resolve)))));
    const { sample: s } = await sampleHere(0.2);
    const d = s.destinations.find((x) => x.endpoint === `127.0.0.1:${port}`)!;
    expect(d.timeWait - (before?.timeWait ?? 0)).toBeGreaterThanOrEqual(CLOSED);
    expect(d.sockets).toBeGreaterThanOrEqual(CONNECTIONS + CLOSED);
    expect(s.socketsByState.TIME_WAIT).toBeGreaterThanOrEqual(CLOSED);
    expect(s.timeWait).toBeGreaterThanOrEqual(CLOSED);
  });

  it.each<[string, string, boolean]>([
    // 3 fds more on top of stdin, stdout, stderr (and what the shell keeps): 6 or more of 8.
    [
      "lists a process at 75 % of its soft limit or more",
      "exec 3</dev/null 4</dev/null 5</dev/null; ulimit -Sn 8",
      true,
    ],
    // It lowered its limit below what it holds (as sshd's sandbox does): at no wall, left out.
    [
      "leaves out a process holding more fds than its soft limit",
      "exec 3</dev/null 4</dev/null 5</dev/null; ulimit -Sn 4",
      false,
    ],
  ])("%s", async (_what, setup, listed) => {
    const child = spawn("sh", ["-c", `${setup}; read _`], { stdio: ["pipe", "ignore", "ignore"] });
    try {
      // Wait for the shell to have run its setup: the soft limit, set last, reads back as set.
      const soft = listed ? "8" : "4";
      const deadline = Date.now() + 5000;
      const limitOf = () => {
        try {
          return /^Max open files +(\S+)/m.exec(readFileSync(`/proc/${child.pid}/limits`, "utf8"))?.[1];
        } catch {
          return undefined;
        }
      };
      while (limitOf() !== soft && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(limitOf()).toBe(soft);
      const { sample: s } = await sampleHere(0);
      const mine = s.processes.worst.find((p) => p.pid === child.pid);
      if (listed) {
        expect(mine).toBeDefined();
        expect(mine).toMatchObject({
          fds: readdirSync(`/proc/${child.pid}/fd`).length,
          soft: 8,
          name: readFileSync(`/proc/${child.pid}/comm`, "utf8").trim(),
        });
        expect(mine!.fds / mine!.soft).toBeGreaterThanOrEqual(0.75);
        expect(mine!.hard).toBeGreaterThan(8);
      } else expect(mine).toBeUndefined();
    } finally {
      child.stdin!.end();
      child.kill();
    }
  });

  it("shows connections waiting for accept() in the listener's queue", async () => {
    // python3 listens and never accepts: the kernel completes the handshakes and queues them.
    const listener = spawn(
      "python3",
      [
        "-c",
        "import socket,sys\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen(7)\nprint(s.getsockname()[1],flush=True)\nsys.stdin.read()",
      ],
      { stdio: ["pipe", "pipe", "inherit"] },
    );
    const held: Socket[] = [];
    try {
      const wport = await new Promise<number>((resolve, reject) => {
        listener.once("error", reject);
        listener.stdout!.once("data", (d: Buffer) => resolve(Number(d.toString().trim())));
      });
      for (let i = 0; i < 3; i++) held.push(createConnection({ port: wport, host: "127.0.0.1" }));
      await Promise.all(held.map((c) => new Promise((resolve) => c.once("connect", resolve))));
      const { sample: s } = await sampleHere(0.2);
      expect(s.listeners.find((x) => x.endpoint === `127.0.0.1:${wport}`)).toEqual({
        endpoint: `127.0.0.1:${wport}`,
        port: wport,
        acceptQueue: 3,
        backlog: 7,
        synQueue: 0,
      });
    } finally {
      for (const c of held) c.destroy();
      listener.stdin!.end();
      listener.kill();
    }
  });
});
