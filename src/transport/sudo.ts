import { randomBytes } from "node:crypto";
import { HostError, type ExecResult } from "./types.js";

/**
 * Becoming root, the same way on every transport. Without a password: `sudo -n`, which fails at
 * once instead of prompting. With one: sudo reads it from stdin only after printing a random
 * prompt, and the script is sent only after a marker shows the shell runs as root — so the
 * password can never reach the shell, even when sudo needs no password at all.
 */

export const SUDO_WITHOUT_PASSWORD = "sudo -n -- sh -s";

/** What to do on the channel after more stderr arrived. */
export type SudoStep = { write: string } | { endWith: string } | "give-up" | null;

export class SudoPasswordExchange {
  readonly command: string;
  private readonly prompt: string;
  private readonly ready: string;
  private prompts = 0;
  private scriptSent = false;

  constructor(private readonly password: string) {
    const nonce = randomBytes(12).toString("hex");
    this.prompt = `[provision-sudo-${nonce}]`;
    this.ready = `provision-root-${nonce}`;
    this.command = `sudo -S -p '${this.prompt}' -- sh -c 'echo ${this.ready} >&2; exec sh -s'`;
  }

  /** Given all stderr seen so far: the password after the first prompt, the script after the marker; a second prompt means a wrong password. */
  next(stderrSoFar: string, script: string): SudoStep {
    if (this.scriptSent) return null;
    const count = stderrSoFar.split(this.prompt).length - 1;
    if (count > this.prompts) {
      this.prompts = count;
      // Asked again: the password was wrong. No more input makes sudo give up at once.
      if (this.prompts > 1) return "give-up";
      if (!stderrSoFar.includes(this.ready)) return { write: `${this.password}\n` };
    }
    if (stderrSoFar.includes(this.ready)) {
      this.scriptSent = true;
      return { endWith: script };
    }
    return null;
  }

  /** The command's result without the prompt and marker; sudo's refusals as errors. */
  finish(result: ExecResult, where: string): ExecResult {
    if (!this.scriptSent && (this.prompts > 1 || /incorrect password|Sorry, try again/i.test(result.stderr))) {
      throw new HostError(`sudo on ${where} rejected the become password`, "sudo");
    }
    if (!this.scriptSent) checkSudo(result, where);
    return { ...result, stderr: result.stderr.split(this.prompt).join("").replace(`${this.ready}\n`, "") };
  }
}

export function checkSudo(result: ExecResult, where: string): void {
  if (result.code === 1 && /sudo: (a password is required|a terminal is required)/.test(result.stderr)) {
    throw new HostError(
      `sudo on ${where} needs a password: set PROVISION_BECOME_PASSWORD, pass --ask-become-pass, or allow NOPASSWD for this user`,
      "sudo",
    );
  }
  if (result.code === 1 && /is not in the sudoers file|not allowed to execute/.test(result.stderr)) {
    throw new HostError(`the login user on ${where} may not use sudo: ${result.stderr.trim()}`, "sudo");
  }
}
