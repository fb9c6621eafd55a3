import { createHash } from "node:crypto";
import { probeKey, type FactRequest, type Facts, type ProbeResult } from "../role.js";
import { ProbeParseError, type AnyProbe } from "../facts/probe.js";
import { parseRecords, recordPrelude } from "./records.js";
import { shQuote } from "../transport/shell.js";
import { sysctlProcPath } from "../sysctl/value.js";
import { LISTENING_PORTS_COMMAND, parseListeningPorts } from "../facts/listeningPorts.js";

/** Unique requests in a stable order, so the same roles always produce the same script. */
export function dedupeRequests(requests: FactRequest[]): FactRequest[] {
  const seen = new Map<string, FactRequest>();
  for (const r of requests) seen.set(requestId(r), r);
  return [...seen.values()];
}

export function requestId(r: FactRequest): string {
  switch (r.kind) {
    case "sysctl":
      return `sysctl:${r.key}`;
    case "file":
      return `file:${r.path}`;
    case "listening-ports":
      return "listening-ports";
    case "probe":
      return `probe:${probeKey(r.probe.name, r.arg)}`;
  }
}

/** Ends the here-document that carries a probe's output. */
const PROBE_OUT_END = "PROVISION_PROBE_OUTPUT";

/** The record that holds every live sysctl value, read by one grep. */
const LIVE_SYSCTLS = "sysctls";

/**
 * One shell script that reads every requested fact: one round trip per host. Live sysctl values
 * are all read by one grep (`path:line` for each line of each file) instead of one process per
 * value: on a small VM each process costs about a millisecond, on every host of every run.
 */
export function buildGatherScript(requests: FactRequest[], nonce: string): string {
  const lines = [recordPrelude(nonce), "set --"];
  const unique = dedupeRequests(requests);
  unique.forEach((r, i) => {
    const id = `f${i}`;
    switch (r.kind) {
      case "sysctl": {
        const p = shQuote(sysctlProcPath(r.key));
        lines.push(`if [ -r ${p} ]; then rec ${id} live; echo; set -- "$@" ${p}; else rec ${id} absent; echo; fi`);
        break;
      }
      case "file": {
        const p = shQuote(r.path);
        lines.push(
          `if [ -f ${p} ] && [ -r ${p} ]; then rec ${id} ok; b64 < ${p}; elif [ -f ${p} ]; then rec ${id} unreadable; echo; elif [ -e ${p} ]; then rec ${id} notfile; echo; else rec ${id} absent; echo; fi`,
        );
        break;
      }
      case "listening-ports":
        lines.push(`rec ${id} ok; ${LISTENING_PORTS_COMMAND} | b64`);
        break;
      case "probe": {
        // A subshell keeps one probe's `exit` or `set` from touching the others.
        const cmd = r.probe.script(r.arg);
        // A here-document feeds base64 without the two processes of `printf | b64`; it adds one
        // newline, which the parser takes off ($(...) already dropped the output's own).
        lines.push(
          `out=$( (\n${cmd}\n) 2>&1 ); rc=$?`,
          `if [ $rc -eq 0 ]; then rec ${id} ok; else rec ${id} fail; fi; b64 <<${PROBE_OUT_END}\n$out\n${PROBE_OUT_END}`,
        );
        break;
      }
    }
  });
  // /dev/null makes grep name the file on every line, even for a single path (-H is not POSIX).
  if (unique.some((r) => r.kind === "sysctl"))
    lines.push(
      `rec ${LIVE_SYSCTLS} ok; if [ $# -gt 0 ]; then grep -e '' /dev/null "$@" 2>/dev/null | b64; else echo; fi`,
    );
  return `${lines.join("\n")}\n`;
}

/** path → the file's content without its final newline, from grep's `path:line` lines. */
function liveValues(payload: string, paths: string[]): Map<string, string> {
  const byLength = [...paths].sort((a, b) => b.length - a.length);
  const lines = new Map<string, string[]>();
  for (const line of payload.split("\n")) {
    const path = byLength.find((p) => line.startsWith(`${p}:`));
    if (path !== undefined) lines.set(path, [...(lines.get(path) ?? []), line.slice(path.length + 1)]);
  }
  return new Map([...lines].map(([path, l]) => [path, l.join("\n")]));
}

export class FactError extends Error {}

/** Pure: turns the gather script's output into Facts; throws FactError when a record is missing. */
export function parseGatherOutput(stdout: string, nonce: string, requests: FactRequest[]): Facts {
  const records = parseRecords(stdout, nonce);
  const facts: Facts = { sysctl: {}, files: {}, fileSha256: {}, listeningPorts: null, probes: {} };
  const unique = dedupeRequests(requests);
  const sysctlPaths = unique.flatMap((r) => (r.kind === "sysctl" ? [sysctlProcPath(r.key)] : []));
  const liveRecord = records.get(LIVE_SYSCTLS);
  const live = liveRecord ? liveValues(liveRecord.payload, sysctlPaths) : null;
  unique.forEach((r, i) => {
    const rec = records.get(`f${i}`);
    if (!rec) throw new FactError(`no answer for ${requestId(r)} (output cut short?)`);
    switch (r.kind) {
      case "sysctl":
        if (rec.status === "live") {
          if (!live) throw new FactError(`no answer for the live sysctl values (output cut short?)`);
          // A readable file with no line (empty, or its read failed) reads as "", as `cat` would.
          facts.sysctl[r.key] = live.get(sysctlProcPath(r.key)) ?? "";
        } else {
          // The kernel ends every value with a newline; the value itself never has one.
          facts.sysctl[r.key] = rec.status === "ok" ? rec.payload.replace(/\n$/, "") : null;
        }
        break;
      case "file":
        if (rec.status === "unreadable")
          throw new FactError(`cannot read ${r.path} (permission denied); set ansible_become: true or log in as root`);
        if (rec.status === "notfile")
          throw new FactError(`${r.path} exists but is not a regular file; move it away first`);
        facts.files[r.path] = rec.status === "ok" ? rec.payload : null;
        facts.fileSha256![r.path] = rec.status === "ok" ? createHash("sha256").update(rec.raw).digest("hex") : "absent";
        break;
      case "listening-ports":
        facts.listeningPorts = parseListeningPorts(rec.payload);
        break;
      case "probe":
        facts.probes![probeKey(r.probe.name, r.arg)] = probeResult(
          r.probe,
          r.arg,
          rec.status,
          rec.payload.replace(/\n$/, ""),
        );
        break;
    }
  });
  return facts;
}

function probeResult(probe: AnyProbe, arg: string | undefined, status: string, output: string): ProbeResult {
  if (status !== "ok") return { ok: false, error: output.trim() || "failed without a message" };
  try {
    return { ok: true, value: probe.parse(output, arg) };
  } catch (err) {
    if (err instanceof ProbeParseError) return { ok: false, error: err.message };
    throw err;
  }
}
