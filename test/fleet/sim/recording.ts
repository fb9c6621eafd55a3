import { createHash } from "node:crypto";

/**
 * Answers recorded from one real fleet host, replayed by the simulated fleet (server.ts) for
 * thousands of hosts. Pure: no I/O. Every script provision sends carries a fresh nonce (records.ts),
 * so a script is looked up with its nonce replaced by a placeholder, and the nonce of the script
 * being answered is put back into the recorded output.
 */

export const NONCE_PLACEHOLDER = "{{nonce}}";
export const PRISTINE = "pristine";
export const TUNED = "tuned";

export interface RecordedAnswer {
  /** With the nonce replaced by NONCE_PLACEHOLDER. */
  stdout: string;
  stderr: string;
  code: number;
  /** The host's state after this script; absent when the script changes nothing. */
  next?: string;
}

export interface Recording {
  version: 1;
  /** The real host's address. */
  recordedFrom: string;
  /** ISO time. */
  recordedAt: string;
  /**
   * YAML vars every host of the recording's inventory had (group_vars/all.yaml). Scripts depend on
   * them, so a simulated fleet's inventory must carry the same ones for its scripts to be found.
   */
  allVars?: string;
  /** state → script key → answer. */
  states: Record<string, Record<string, RecordedAnswer>>;
}

export interface Answer {
  stdout: string;
  stderr: string;
  code: number;
  /** The host's state after this script (the same state when it changes nothing). */
  next: string;
  /** False when the recording has no answer for this script in this state. */
  recorded: boolean;
}

export interface ExecResultText {
  stdout: string;
  stderr: string;
  code: number;
}

const NONCE_IN_PRELUDE = /^rec\(\) \{ printf '@@([0-9a-f]{16}) /m;
/** buildApplyScript puts this line right after the prelude; no other script has it. */
const APPLY_MARKER = /^failed=0$/m;
/** The command the transport runs for every script (without become). */
export const PLAIN_SHELL = "sh -s";
export const UNKNOWN_SCRIPT_CODE = 127;

export function emptyRecording(recordedFrom: string, recordedAt: string, allVars?: string): Recording {
  return { version: 1, recordedFrom, recordedAt, ...(allVars !== undefined ? { allVars } : {}), states: {} };
}

/**
 * What identifies one exec: the script on stdin, and the command too when it is not plain `sh -s`
 * (a sudo command line, `true`), so a script run another way is never answered as if it were the same.
 */
export function execText(command: string, stdin: string): string {
  return command === PLAIN_SHELL ? stdin : `#exec ${command}\n${stdin}`;
}

export function normalizeScript(script: string): { key: string; nonce: string | null } {
  const nonce = NONCE_IN_PRELUDE.exec(script)?.[1] ?? null;
  const text = hideNonce(script, nonce);
  return { key: createHash("sha256").update(text, "utf8").digest("hex"), nonce };
}

export function isApplyScript(script: string): boolean {
  return APPLY_MARKER.test(script);
}

export function answer(recording: Recording, state: string, script: string): Answer {
  const { key, nonce } = normalizeScript(script);
  const answers = Object.hasOwn(recording.states, state) ? recording.states[state]! : {};
  const entry = Object.hasOwn(answers, key) ? answers[key] : undefined;
  if (entry === undefined) {
    return {
      stdout: "",
      stderr: `simulated host: no recorded answer for this script (key ${key.slice(0, 12)}, state ${state})\n`,
      code: UNKNOWN_SCRIPT_CODE,
      next: state,
      recorded: false,
    };
  }
  return {
    stdout: revealNonce(entry.stdout, nonce),
    stderr: revealNonce(entry.stderr, nonce),
    code: entry.code,
    next: entry.next ?? state,
    recorded: true,
  };
}

/** Adds (or replaces) the answer to `script` in `state`; returns the state the host is in afterwards. */
export function addToRecording(recording: Recording, state: string, script: string, result: ExecResultText): string {
  const { key, nonce } = normalizeScript(script);
  const next = isApplyScript(script) ? TUNED : undefined;
  const answers = (recording.states[state] ??= {});
  answers[key] = {
    stdout: hideNonce(result.stdout, nonce),
    stderr: hideNonce(result.stderr, nonce),
    code: result.code,
    ...(next !== undefined ? { next } : {}),
  };
  return next ?? state;
}

/** A recording read from JSON, checked enough that a wrong file fails here and not as unknown scripts. */
export function parseRecording(json: string): Recording {
  const data = JSON.parse(json) as Partial<Recording> | null;
  if (data === null || typeof data !== "object" || data.version !== 1 || typeof data.states !== "object")
    throw new Error("not a simulated-fleet recording (version 1 with states)");
  for (const [state, answers] of Object.entries(data.states ?? {})) {
    for (const [key, a] of Object.entries(answers)) {
      if (typeof a?.stdout !== "string" || typeof a.stderr !== "string" || typeof a.code !== "number")
        throw new Error(`recording: state ${state}, key ${key.slice(0, 12)}: an answer needs stdout, stderr and code`);
    }
  }
  return data as Recording;
}

export function scriptCount(recording: Recording): number {
  return Object.values(recording.states).reduce((n, answers) => n + Object.keys(answers).length, 0);
}

function hideNonce(text: string, nonce: string | null): string {
  return nonce === null ? text : text.replaceAll(nonce, NONCE_PLACEHOLDER);
}

function revealNonce(text: string, nonce: string | null): string {
  return nonce === null ? text : text.replaceAll(NONCE_PLACEHOLDER, nonce);
}
