import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { LISTENING_PORTS_COMMAND, parseListeningPorts as parseBound } from "../../src/facts/listeningPorts.js";

/** Both protocols' ports together; the split is tested on its own below. */
function parseListeningPorts(text: string): number[] {
  const { tcp, udp } = parseBound(text);
  return [...new Set([...tcp, ...udp])].sort((a, b) => a - b);
}
import { fixture } from "./_helpers.js";

const read = (name: string) => readFileSync(fixture("proc", name), "utf8");
const tcp = read("tcp.txt");
const tcp6 = read("tcp6.txt");
const udp = read("udp.txt");
const udp6 = read("udp6.txt");

describe("parseListeningPorts", () => {
  it.each<[string, string, number[]]>([
    ["tcp: LISTEN only, not ESTABLISHED or TIME_WAIT", tcp, [22, 5432, 8080]],
    ["tcp6: LISTEN only", tcp6, [22, 80]],
    ["udp: bound and unconnected only", udp, [53, 68]],
    ["udp6", udp6, [5353]],
    ["all four tables, as the command prints them", tcp + tcp6 + udp + udp6, [22, 53, 68, 80, 5353, 5432, 8080]],
    ["udp before tcp", udp + tcp, [22, 53, 68, 5432, 8080]],
    ["tcp tables only (no IPv6, no udp)", tcp, [22, 5432, 8080]],
    ["headers only", `${tcp.split("\n")[0]}\n${udp.split("\n")[0]}\n`, []],
    ["nothing", "", []],
    ["garbage", "not a proc file\n\n  : \n", []],
  ])("%s", (_what, text, ports) => {
    expect(parseListeningPorts(text)).toEqual(ports);
  });

  it("does not take a UDP socket in state 07 with a remote address for a listener", () => {
    const head = udp.split("\n")[0]!;
    const line =
      "   12: 0A000005:1389 0A000009:0035 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 0";
    expect(parseListeningPorts(`${head}\n${line}\n`)).toEqual([]);
  });

  it("does not take a TCP socket in state 07 (bound, not listening) for a listener", () => {
    const head = tcp.split("\n")[0]!;
    const line =
      "   0: 00000000:1389 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0";
    expect(parseListeningPorts(`${head}\n${line}\n`)).toEqual([]);
  });

  it("handles text without a final newline", () => {
    expect(parseListeningPorts(tcp.trimEnd())).toEqual([22, 5432, 8080]);
  });

  it("reads this machine's real /proc/net/tcp and /proc/net/udp as captured", () => {
    const ports = parseListeningPorts(read("this-machine-tcp.txt") + read("this-machine-udp.txt"));
    expect(ports).toEqual([2024]);
  });

  it("agrees with an independent reading of the live /proc/net tables", () => {
    const live = execFileSync("sh", ["-c", LISTENING_PORTS_COMMAND], { encoding: "utf8" });
    const expected = new Set<number>();
    let udpTable = false;
    for (const line of live.split("\n")) {
      const cols = line.trim().split(/\s+/);
      if (cols[0] === "sl") {
        udpTable = line.includes("drops");
        continue;
      }
      if (cols.length < 4) continue;
      const port = parseInt(cols[1]!.split(":")[1]!, 16);
      if (!udpTable && cols[3] === "0A") expected.add(port);
      if (udpTable && cols[3] === "07" && /^0+:0000$/.test(cols[2]!)) expected.add(port);
    }
    expect(parseListeningPorts(live)).toEqual([...expected].sort((a, b) => a - b));
  });

  it("reads all four tables and hides errors for missing ones", () => {
    expect(LISTENING_PORTS_COMMAND).toBe("cat /proc/net/tcp /proc/net/tcp6 /proc/net/udp /proc/net/udp6 2>/dev/null");
  });
});

describe("parseListeningPorts keeps TCP and UDP apart", () => {
  it("reports a TCP listener and an unconnected UDP socket in their own lists", () => {
    const tcpHead = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";
    const udpHead =
      "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops";
    const text = [
      tcpHead,
      "   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0",
      udpHead,
      "  1: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 2 2 0 0",
      "  2: 00000000:B2A4 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 3 2 0 0",
    ].join("\n");
    expect(parseBound(text)).toEqual({ tcp: [8080], udp: [53, 45732] });
  });
});
