import { describe, expect, it } from "vitest";
import {
  cellCode,
  codeSpan,
  detailsBlock,
  fitMarkdown,
  fullOutputCommand,
  GITHUB_COMMENT_CHARS,
  type MarkdownSection,
} from "../../src/output/markdown.js";

const block = (host: string, size: number) => ({
  hosts: [host],
  text: `${host}:${"x".repeat(size - host.length - 2)}\n`,
});

describe("fitMarkdown", () => {
  const head = "### provision plan\n\nPlan: summary.\n\n";
  const sections: MarkdownSection[] = [
    { heading: "#### errors\n", blocks: [block("e1", 50)], end: "\n" },
    { heading: "", blocks: [block("c1", 300), block("c2", 100), block("c3", 100)], end: "" },
    { heading: "", blocks: [block("u1", 40)], end: "" },
  ];
  const what = { command: "plan" as const, hosts: 6 };

  it("prints everything when it fits", () => {
    const all = fitMarkdown(head, sections, what, {});
    expect(all).toBe(
      head +
        "#### errors\n" +
        block("e1", 50).text +
        "\n" +
        sections[1]!.blocks.map((b) => b.text).join("") +
        block("u1", 40).text,
    );
  });

  it("over the limit: keeps the head and the first sections' blocks that fit, passes over one too big, and says what was left out", () => {
    const out = fitMarkdown(head, sections, what, { maxChars: 600, fullOutput: "provision plan -i prod --json" });
    expect(out.length).toBeLessThanOrEqual(600);
    expect(out.startsWith(head)).toBe(true);
    expect(out).toContain("e1:");
    expect(out).not.toContain("c1:");
    expect(out).toContain("c2:");
    expect(out).toContain("u1:");
    expect(out.trimEnd().split("\n").at(-1)).toBe(
      "**2 of 5 groups left out** to fit one comment (2 hosts: c1, c3). Full plan: `provision plan -i prod --json` (6 hosts)",
    );
  });

  it("leaves out a section's heading with all its blocks", () => {
    const out = fitMarkdown(head, [{ heading: "#### errors\n", blocks: [block("e1", 2000)], end: "\n" }], what, {
      maxChars: 600,
    });
    expect(out).not.toContain("#### errors");
    expect(out).toContain("Full plan: `provision plan … --json` (6 hosts)");
  });

  it("always keeps the head, even when nothing else fits", () => {
    const out = fitMarkdown(head, sections, what, { maxChars: 10 });
    expect(out.startsWith(head)).toBe(true);
    expect(out).toContain("**5 of 5 groups left out** to fit one comment (5 hosts: e1, c[1:3], u1)");
  });

  it("defaults to one GitHub comment", () => {
    expect(GITHUB_COMMENT_CHARS).toBe(65_536);
    const big = [{ heading: "", blocks: Array.from({ length: 100 }, (_, i) => block(`h${i}`, 1000)), end: "" }];
    expect(fitMarkdown(head, big, what, {}).length).toBeLessThanOrEqual(65_536);
  });
});

describe("Markdown pieces", () => {
  it("detailsBlock leaves the blank lines GitHub needs to render Markdown inside, and escapes the summary", () => {
    expect(detailsBlock("a <b> & c", "| t |\n|---|\n| 1 |\n", true)).toBe(
      "<details open><summary>a &lt;b&gt; &amp; c</summary>\n\n| t |\n|---|\n| 1 |\n\n</details>\n\n",
    );
  });

  it("codeSpan holds backticks; cellCode escapes the cell separator and joins lines", () => {
    expect(codeSpan("a")).toBe("`a`");
    expect(codeSpan("a`b")).toBe("`` a`b ``");
    expect(cellCode("a|b\nc")).toBe("`a\\|b c`");
  });

  it("fullOutputCommand is the same command line with --json instead of --format", () => {
    expect(fullOutputCommand(["plan", "-i", "prod inv", "--format", "markdown", "--limit", "web*"])).toBe(
      "provision plan -i 'prod inv' --limit 'web*' --json",
    );
    expect(fullOutputCommand(["verify", "--format=markdown"])).toBe("provision verify --json");
    expect(fullOutputCommand(["plan", "inv.yml", "-o", "plan.json", "--out=p2.json", "-op3.json"])).toBe(
      "provision plan inv.yml --json",
    );
  });
});
