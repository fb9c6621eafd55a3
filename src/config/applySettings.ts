import type { Command, Option } from "commander";
import { ansibleBoolean } from "../inventory/usedVars.js";
import { plural } from "../output/words.js";
import { AmountError, parseAmount } from "../rollout/policy.js";
import { formatProblem, sortProblems, type ConfigProblem } from "./errors.js";
import {
  loadSettings,
  processContext,
  SETTING_KEYS,
  type Setting,
  type SettingKey,
  type Settings,
  type SettingsContext,
} from "./settings.js";

/**
 * The bridge between settings (ansible.cfg, ANSIBLE_*, provision.cfg) and the command line: an
 * option the user did not give takes its value from the settings, checked by the rules the flag
 * itself has (its parser, its choices; the rollout amounts as --batches checks them), and is
 * marked with the source "config". A flag always wins. Commander is used through its types only:
 * the command line stays cli.ts's.
 */

export interface Applied {
  setting: Setting;
  value: unknown;
}

export interface ApplyResult {
  applied: Applied[];
  problems: ConfigProblem[];
  notes: string[];
}

/**
 * Loads the settings `command` can use and applies them (see applyToCommand). Writes notes and
 * problems (and, with -v, the files used) through `write`; false when the settings have errors.
 * Commands without a configurable option (show) read nothing.
 */
export function applySettings(
  command: Command,
  configFlag: string | undefined,
  write: (line: string) => void,
  ctx: SettingsContext = processContext(configFlag),
): boolean {
  if (configFlag === undefined && !command.options.some((o) => settingKeyOf(o) !== undefined)) return true;
  const settings = loadSettings(ctx);
  const result = applyToCommand(command, settings);
  const problems = sortProblems([...settings.problems, ...result.problems]);
  const connects = command.options.some((o) => o.long === "--known-hosts");
  for (const note of [...settings.notes, ...(connects ? settings.connectionNotes : []), ...result.notes])
    write(`note: ${note}`);
  if ((command.opts() as { verbose?: unknown }).verbose === true)
    for (const line of usedLines(settings, result.applied)) write(line);
  for (const p of problems) write(formatProblem(p));
  if (problems.length === 0) return true;
  write(`${plural(problems.length, "error")} in the configuration; nothing was sent to any host.`);
  return false;
}

/**
 * Every option of `command` left at its default takes the settings' value. The inventory only
 * where the command takes inventory arguments and none were given (not `explain`, whose output
 * without -i is the roles' reference), and never under `run --plan` (the plan fixes it).
 */
export function applyToCommand(command: Command, settings: Settings): ApplyResult {
  const result: ApplyResult = { applied: [], problems: [], notes: [] };
  for (const option of command.options) {
    const key = settingKeyOf(option);
    const setting = key === undefined ? undefined : settings.values.get(key);
    if (key === undefined || setting === undefined) continue;
    const attribute = option.attributeName();
    const source = command.getOptionValueSource(attribute);
    if (source !== undefined && source !== "default") continue;
    if (key === "inventory" && !inventoryFromSettings(command)) continue;
    const converted = settingValue(setting, option);
    if (!converted.ok) {
      const o = setting.origin;
      result.problems.push({
        file: o.file,
        line: o.line,
        col: o.col,
        keyPath: o.source === "environment" ? "" : o.name,
        severity: "error",
        problem: converted.problem,
        fix: converted.fix,
      });
      continue;
    }
    command.setOptionValueWithSource(attribute, converted.value, "config");
    result.applied.push({ setting, value: converted.value });
    if (setting.negated && converted.value === true)
      result.notes.push(
        `${written(setting)}: provision never turns host key checking off; it records the keys of hosts not yet in known_hosts (as --accept-new-host-keys) and still refuses a host whose key changed`,
      );
  }
  return result;
}

/** provision.cfg's name of an option: its long flag without dashes, `-` as `_`; only the configurable ones. */
export function settingKeyOf(option: Option): SettingKey | undefined {
  if (option.long === undefined || option.negate) return undefined;
  const name = option.long.replace(/^--/, "").replace(/-/g, "_");
  return name in SETTING_KEYS ? (name as SettingKey) : undefined;
}

function inventoryFromSettings(command: Command): boolean {
  const index = command.registeredArguments.findIndex((a) => a.name() === "inventory");
  if (index === -1) return false;
  const given = command.processedArgs[index] as unknown;
  if (Array.isArray(given) && given.length > 0) return false;
  return (command.opts() as { plan?: unknown }).plan === undefined;
}

type Converted = { ok: true; value: unknown } | { ok: false; problem: string; fix: string };

/** The option's value for a setting, by the flag's own rules. */
export function settingValue(setting: Setting, option: Option): Converted {
  const flag = option.long ?? option.flags;
  const text = setting.text;
  const bad = (problem: string, fix: string): Converted => ({
    ok: false,
    problem,
    fix: `${fix}${orUnset(setting, option.defaultValue)}`,
  });
  if (!option.required && !option.optional) {
    const b = ansibleBoolean(text);
    if (b === undefined) {
      const hash = /\s#/.test(text)
        ? " (a # inside a line starts no comment in these files; ; after a space does)"
        : "";
      return bad(`${JSON.stringify(text)} is not a boolean${hash}`, "write true or false (yes/no, on/off, 1/0 too)");
    }
    return { ok: true, value: setting.negated ? !b : b };
  }
  if (setting.items === undefined && text.includes("\n"))
    return bad(
      `the value goes on over ${text.split("\n").length} lines: a line indented under a setting continues its value`,
      "put the value on one line, and start the next setting at the left margin",
    );
  const items = Array.isArray(option.defaultValue) ? (setting.items ?? [text]) : [text];
  let value: unknown = Array.isArray(option.defaultValue) ? [] : option.defaultValue;
  for (const item of items) {
    if (option.argChoices && !option.argChoices.includes(item))
      return bad(
        `${JSON.stringify(item)} is not one of ${option.argChoices.join(", ")}`,
        `write one of ${option.argChoices.join(", ")}, as ${flag} takes`,
      );
    try {
      value = option.parseArg ? option.parseArg(item, value) : Array.isArray(value) ? [...value, item] : item;
    } catch (err) {
      const hash = /\s#/.test(item)
        ? "; a # inside a line starts no comment in these files (; after a space does)"
        : "";
      return bad(
        `${JSON.stringify(item)} is not a valid value: ${(err as Error).message}${hash}`,
        `write a value ${flag} accepts`,
      );
    }
  }
  const extra = EXTRA_CHECKS[setting.key]?.(text);
  if (extra) return bad(extra.problem, extra.fix);
  return { ok: true, value };
}

/** Checks of options whose flag takes plain text and is checked later (the rollout's, in rollout/fromConfig.ts). */
const EXTRA_CHECKS: Partial<Record<SettingKey, (text: string) => { problem: string; fix: string } | null>> = {
  batches: (text) => {
    for (const part of text.split(",")) {
      const problem = amountProblem(part);
      if (problem) return { problem, fix: "write batch sizes such as 1,10%,100%" };
      if (parseAmount(part) === 0)
        return { problem: "a batch of 0 hosts", fix: "use sizes of at least 1, e.g. 1,10%,100%" };
    }
    return null;
  },
  max_fail_per_batch: (text) => amountFix(text),
  max_fail_total: (text) => amountFix(text),
  pause: (text) =>
    text === "prompt" || /^\d+$/.test(text)
      ? null
      : { problem: `${JSON.stringify(text)} is neither seconds nor "prompt"`, fix: "write seconds (30) or prompt" },
};

function amountProblem(text: string): string | null {
  try {
    parseAmount(text);
    return null;
  } catch (err) {
    if (!(err instanceof AmountError)) throw err;
    return err.message;
  }
}

function amountFix(text: string): { problem: string; fix: string } | null {
  const problem = amountProblem(text);
  return problem ? { problem, fix: "write a count (3) or a percentage (10%)" } : null;
}

function orUnset(setting: Setting, defaultValue: unknown): string {
  if (setting.origin.source === "environment") return `, or unset ${setting.origin.name}`;
  const shown = typeof defaultValue === "number" || typeof defaultValue === "string" ? ` (${defaultValue})` : "";
  const fallback =
    setting.origin.source === "provision.cfg" ? `Ansible's setting or the default${shown}` : `the default${shown}`;
  return `, or remove the line to use ${fallback}`;
}

/** `ansible.cfg:7: host_key_checking = False`, or `ANSIBLE_HOST_KEY_CHECKING=False`. */
function written(setting: Setting): string {
  const o = setting.origin;
  return o.source === "environment" ? `${o.name}=${setting.text}` : `${o.file}:${o.line}: ${o.name} = ${setting.text}`;
}

/** With -v: which files were read, and what each decided. */
function usedLines(settings: Settings, applied: Applied[]): string[] {
  const names = (pick: (s: Setting) => boolean) =>
    applied
      .map((a) => a.setting)
      .filter(pick)
      .map((s) => s.origin.name);
  const lines = settings.files.map(({ file, source }) => {
    const taken = names((s) => s.origin.file === file);
    const what = source === "ansible.cfg" ? "Ansible's config file" : "provision's config file";
    return `using ${file} as ${what}: ${taken.length > 0 ? taken.join(", ") : "nothing in it applies here"}`;
  });
  const fromEnv = names((s) => s.origin.source === "environment");
  if (fromEnv.length > 0) lines.push(`using ${fromEnv.join(", ")} from the environment`);
  return lines;
}
