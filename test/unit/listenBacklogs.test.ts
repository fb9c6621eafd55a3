import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  endpointName,
  LISTEN_BACKLOGS_COMMAND,
  LISTEN_BACKLOGS_PROBE,
  parseSsListeners,
  smallestPerEndpoint,
  SS_MISSING_EXIT,
  type Listener,
} from "../../src/facts/listenBacklogs.js";
import { ProbeParseError } from "../../src/facts/probe.js";

/**
 * `ss -Hltn` (iproute2 6.1.0) in a network namespace of this machine, with python3 listeners on:
 * 0.0.0.0:8080 listen(511), [::]:8080 v6only listen(511), [::]:9000 dual-stack listen(16),
 * 127.0.0.1:6379 listen(100000) capped by somaxconn 4096, 127.0.0.1:53 bound to device lo,
 * [::1]:5432 listen(244), fe80::1 scoped to va listen(50), 198.18.250.1:443 listen(0).
 */
const SS_OUTPUT = [
  "LISTEN 0      511         0.0.0.0:8080 0.0.0.0:*",
  "LISTEN 0      0      198.18.250.1:443  0.0.0.0:*",
  "LISTEN 0      4096      127.0.0.1:6379 0.0.0.0:*",
  "LISTEN 0      4096   127.0.0.1%lo:53   0.0.0.0:*",
  "LISTEN 0      50     [fe80::1]%va:7000    [::]:*",
  "LISTEN 0      511            [::]:8080    [::]:*",
  "LISTEN 0      16                *:9000       *:*",
  "LISTEN 0      244           [::1]:5432    [::]:*",
  "",
].join("\n");

/** `ss -ltn` on this machine: the header ends in "Peer Address:PortProcess" (no space), columns padded. */
const SS_WITH_HEADER =
  "State  Recv-Q Send-Q Local Address:Port Peer Address:PortProcess\nLISTEN 0      128          0.0.0.0:2024      0.0.0.0:*          \n";

const l = (address: string, iface: string | null, port: number, backlog: number): Listener => ({
  address,
  iface,
  port,
  backlog,
});

describe("parseSsListeners", () => {
  it("reads every listener of real ss output: IPv4, IPv6 in brackets, %iface, * and backlog 0", () => {
    expect(parseSsListeners(SS_OUTPUT)).toEqual([
      l("0.0.0.0", null, 8080, 511),
      l("198.18.250.1", null, 443, 0),
      l("127.0.0.1", null, 6379, 4096),
      l("127.0.0.1", "lo", 53, 4096),
      l("fe80::1", "va", 7000, 50),
      l("::", null, 8080, 511),
      l("*", null, 9000, 16),
      l("::1", null, 5432, 244),
    ]);
  });

  it.each<[string, string, Listener[]]>([
    ["the header of ss -ltn (no -H) is skipped", SS_WITH_HEADER, [l("0.0.0.0", null, 2024, 128)]],
    ["no listeners at all", "", []],
    ["only the header", "State  Recv-Q Send-Q Local Address:Port Peer Address:PortProcess\n", []],
    [
      "a Recv-Q above 0 (connections waiting for accept) is not the backlog",
      "LISTEN 129    128    0.0.0.0:80 0.0.0.0:*\n",
      [l("0.0.0.0", null, 80, 128)],
    ],
    ["an IPv4-mapped address", "LISTEN 0 10 [::ffff:127.0.0.1]:8443 [::]:*\n", [l("::ffff:127.0.0.1", null, 8443, 10)]],
    [
      "an interface name with dots and dashes",
      "LISTEN 0 10 [fe80::2]%br-lan.10:22 [::]:*\n",
      [l("fe80::2", "br-lan.10", 22, 10)],
    ],
    ["trailing spaces", "LISTEN 0 7 10.0.0.1:65535 0.0.0.0:*   \n", [l("10.0.0.1", null, 65535, 7)]],
  ])("%s", (_what, raw, expected) => {
    expect(parseSsListeners(raw)).toEqual(expected);
  });

  it.each<[string, string]>([
    ["a state other than LISTEN", "ESTAB 0 0 10.0.0.1:22 10.0.0.2:5000\n"],
    ["a Send-Q that is not a number", "LISTEN 0 x 0.0.0.0:80 0.0.0.0:*\n"],
    ["a local address without a port", "LISTEN 0 128 0.0.0.0 0.0.0.0:*\n"],
    ["a port above 65535", "LISTEN 0 128 0.0.0.0:65536 0.0.0.0:*\n"],
    ["a missing address", "LISTEN 0 128 :80 0.0.0.0:*\n"],
    ["a truncated line", "LISTEN 0\n"],
    ["an error message instead of a table", "Cannot open netlink socket: Protocol not supported\n"],
  ])("rejects %s", (_what, raw) => {
    expect(() => parseSsListeners(raw)).toThrow(ProbeParseError);
  });
});

describe("probe fields", () => {
  it.each<[Listener, string]>([
    [l("0.0.0.0", null, 80, 1), "0.0.0.0:80"],
    [l("::", null, 80, 1), "[::]:80"],
    [l("fe80::1", "eth0", 7000, 1), "[fe80::1]%eth0:7000"],
    [l("127.0.0.1", "lo", 53, 1), "127.0.0.1%lo:53"],
    [l("*", null, 9000, 1), "*:9000"],
  ])("names %o as %s", (listener, name) => {
    expect(endpointName(listener)).toBe(name);
  });

  it("answers one listener per endpoint with its backlog", () => {
    const listeners = LISTEN_BACKLOGS_PROBE.parse(SS_OUTPUT, undefined);
    expect(Object.fromEntries(listeners.map((x) => [endpointName(x), x.backlog]))).toEqual({
      "0.0.0.0:8080": 511,
      "198.18.250.1:443": 0,
      "127.0.0.1:6379": 4096,
      "127.0.0.1%lo:53": 4096,
      "[fe80::1]%va:7000": 50,
      "[::]:8080": 511,
      "*:9000": 16,
      "[::1]:5432": 244,
    });
    expect(listeners).toEqual(parseSsListeners(SS_OUTPUT));
  });

  it("keeps the smallest backlog of sockets sharing an endpoint (SO_REUSEPORT workers)", () => {
    expect(
      smallestPerEndpoint([l("0.0.0.0", null, 80, 511), l("0.0.0.0", null, 80, 128), l("0.0.0.0", null, 80, 4096)]),
    ).toEqual([l("0.0.0.0", null, 80, 128)]);
  });
});

describe("the probe's command on this machine", () => {
  const run = (path: string) =>
    spawnSync("/bin/sh", ["-c", LISTEN_BACKLOGS_COMMAND], { env: { PATH: path }, encoding: "utf8", timeout: 10_000 });

  it("prints a table the parser reads when ss is installed", () => {
    const r = run("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    expect(r.status).toBe(0);
    expect(() => parseSsListeners(r.stdout)).not.toThrow();
  });

  it("fails with a message naming iproute2 when ss is missing", () => {
    const empty = mkdtempSync(join(tmpdir(), "provision-no-ss-"));
    try {
      const r = run(empty);
      expect(r.status).toBe(SS_MISSING_EXIT);
      expect(r.stdout.trim()).toBe(
        "ss is not installed (package iproute2), so listening sockets' backlogs cannot be read",
      );
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
