import { shJoin } from "../transport/shell.js";
import { foldHostsWithin } from "./hostList.js";
import { plural } from "./words.js";

/** A GitHub comment holds at most this many characters. */
export const GITHUB_COMMENT_CHARS = 65_536;

export interface MarkdownLimits {
  /** The most characters the Markdown may take; default: one GitHub comment. */
  maxChars?: number;
  /**
   * Where the whole output is, named when groups are left out: a command line
   * (`provision plan -i prod --json`, see fullOutputCommand) or a file. Default: `provision plan … --json`.
   */
  fullOutput?: string;
}

/** One group's Markdown (ending in a newline), kept or left out whole. */
export interface MarkdownBlock {
  text: string;
  hosts: readonly string[];
}

/** Blocks under one heading; the heading and `end` are printed only with at least one of them. */
export interface MarkdownSection {
  heading: string;
  blocks: MarkdownBlock[];
  end: string;
}

/** Options that change how or where the output goes, not what it is; each takes a value. */
const OUTPUT_OPTIONS = ["--format", "-o", "--out"];

/**
 * The `--json` command line of the plan, show or verify that printed this Markdown (`args`:
 * process.argv.slice(2)), without its output options: `-o` would save the plan again.
 */
export function fullOutputCommand(args: readonly string[]): string {
  const kept: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (OUTPUT_OPTIONS.includes(arg)) i++;
    else if (!OUTPUT_OPTIONS.some((o) => arg.startsWith(o.startsWith("--") ? `${o}=` : o))) kept.push(arg);
  }
  return `provision ${shJoin([...kept, "--json"])}`;
}

/**
 * The Markdown within `maxChars`: `head` (title and summary) always, then the sections' blocks in
 * the order given (most important first) while they fit, passing over any that doesn't, then a
 * line saying how many groups were left out and where the full output is.
 */
export function fitMarkdown(
  head: string,
  sections: readonly MarkdownSection[],
  what: { command: "plan" | "verify"; hosts: number },
  limits: MarkdownLimits,
): string {
  const maxChars = limits.maxChars ?? GITHUB_COMMENT_CHARS;
  const everything = head + sections.map((s) => sectionText(s, s.blocks)).join("");
  if (everything.length <= maxChars) return everything;
  const all = sections.flatMap((s) => s.blocks);
  const pointer = (left: MarkdownBlock[]) =>
    leftOutLine(left, all.length, what, limits.fullOutput ?? `provision ${what.command} … --json`);
  // The line's host list is cut to LEFT_OUT_HOSTS_CHARS, so this bounds it for any blocks left out.
  let used = head.length + pointer(all).length + LEFT_OUT_HOSTS_CHARS;
  const kept = new Set<MarkdownBlock>();
  for (const section of sections) {
    let opened = false;
    for (const block of section.blocks) {
      const cost = block.text.length + (opened ? 0 : section.heading.length + section.end.length);
      if (used + cost > maxChars) continue;
      kept.add(block);
      used += cost;
      opened = true;
    }
  }
  const body = sections
    .map((s) =>
      sectionText(
        s,
        s.blocks.filter((b) => kept.has(b)),
      ),
    )
    .join("");
  return head + body + pointer(all.filter((b) => !kept.has(b)));
}

function sectionText(section: MarkdownSection, blocks: readonly MarkdownBlock[]): string {
  return blocks.length === 0 ? "" : section.heading + blocks.map((b) => b.text).join("") + section.end;
}

const LEFT_OUT_HOSTS_CHARS = 200;

function leftOutLine(
  left: readonly MarkdownBlock[],
  total: number,
  what: { command: string; hosts: number },
  fullOutput: string,
): string {
  const hosts = left.flatMap((b) => b.hosts);
  const which = hosts.length > 0 ? `: ${foldHostsWithin(hosts, LEFT_OUT_HOSTS_CHARS)}` : "";
  return (
    `**${left.length} of ${plural(total, "group")} left out** to fit one comment (${plural(hosts.length, "host")}${which}). ` +
    `Full ${what.command}: ${codeSpan(fullOutput)} (${plural(what.hosts, "host")})\n`
  );
}

/** `text` as inline code, even when it holds backticks. */
export function codeSpan(text: string): string {
  const longestRun = Math.max(0, ...(text.match(/`+/g) ?? []).map((r) => r.length));
  const fence = "`".repeat(longestRun + 1);
  return longestRun === 0 ? `${fence}${text}${fence}` : `${fence} ${text} ${fence}`;
}

/** A collapsible group: GitHub renders the Markdown inside only with blank lines around it. */
export function detailsBlock(summary: string, body: string, open = false): string {
  return `<details${open ? " open" : ""}><summary>${escapeHtml(summary)}</summary>\n\n${body.trim()}\n\n</details>\n\n`;
}

function escapeHtml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** A table cell's code: a `|` would end the cell. */
export function cellCode(text: string): string {
  return codeSpan(text.replace(/\s+/g, " ").replace(/\|/g, "\\|"));
}
