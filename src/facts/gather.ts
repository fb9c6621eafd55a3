import { createHash } from "node:crypto";
import { probeKey, type FactRequest, type Facts, type ProbeResult } from "../role.js";
import { ProbeParseError } from "./probe.js";
import { findProbe } from "./probes.js";
import { parseRecords, recordPrelude } from "../remote/records.js";
import { shQuote } from "../transport/shell.js";
import { sysctlProcPath } from "../sysctl/value.js";
import { LISTENING_PORTS_COMMAND, parseListeningPorts } from "./listeningPorts.js";

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
      return `probe:${probeKey(r.probe, r.arg)}`;
  }
}

/** One shell script that reads every requested fact: one round trip per host. */
export function buildGatherScript(requests: FactRequest[], nonce: string): string {
  const lines = [recordPrelude(nonce)];
  dedupeRequests(requests).forEach((r, i) => {
    const id = `f${i}`;
    switch (r.kind) {
      case "sysctl": {
        const p = shQuote(sysctlProcPath(r.key));
        lines.push(`if [ -r ${p} ]; then rec ${id} ok; b64 < ${p}; else rec ${id} absent; echo; fi`);
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
        const cmd = findProbe(r.probe).command(r.arg);
        lines.push(`out=$( (\n${cmd}\n) 2>&1 ); rc=$?`, `if [ $rc -eq 0 ]; then rec ${id} ok; else rec ${id} fail; fi; printf '%s' "$out" | b64`);
        break;
      }
    }
  });
  return `${lines.join("\n")}\n`;
}

export class FactError extends Error {}

/** Pure: turns the gather script's output into Facts; throws FactError when a record is missing. */
export function parseGatherOutput(stdout: string, nonce: string, requests: FactRequest[]): Facts {
  const records = parseRecords(stdout, nonce);
  const facts: Facts = { sysctl: {}, files: {}, fileSha256: {}, listeningPorts: null, probes: {} };
  dedupeRequests(requests).forEach((r, i) => {
    const rec = records.get(`f${i}`);
    if (!rec) throw new FactError(`no answer for ${requestId(r)} (output cut short?)`);
    switch (r.kind) {
      case "sysctl":
        // The kernel ends every value with a newline; the value itself never has one.
        facts.sysctl[r.key] = rec.status === "ok" ? rec.payload.replace(/\n$/, "") : null;
        break;
      case "file":
        if (rec.status === "unreadable") throw new FactError(`cannot read ${r.path} (permission denied); set ansible_become: true or log in as root`);
        if (rec.status === "notfile") throw new FactError(`${r.path} exists but is not a regular file; move it away first`);
        facts.files[r.path] = rec.status === "ok" ? rec.payload : null;
        facts.fileSha256![r.path] = rec.status === "ok" ? createHash("sha256").update(rec.raw).digest("hex") : "absent";
        break;
      case "listening-ports":
        facts.listeningPorts = parseListeningPorts(rec.payload);
        break;
      case "probe":
        facts.probes![probeKey(r.probe, r.arg)] = probeResult(r.probe, r.arg, rec.status, rec.payload);
        break;
    }
  });
  return facts;
}

function probeResult(name: string, arg: string | undefined, status: string, output: string): ProbeResult {
  if (status !== "ok") return { ok: false, error: output.trim() || "failed without a message" };
  try {
    return { ok: true, fields: findProbe(name).parse(output, arg) };
  } catch (err) {
    if (err instanceof ProbeParseError) return { ok: false, error: err.message };
    throw err;
  }
}
