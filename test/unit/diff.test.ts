import { describe, expect, it } from "vitest";
import { fileDiff } from "../../src/diff.js";

describe("fileDiff", () => {
  it.each<[string, string | null, string, string]>([
    ["a new file", null, "a = 1\nb = 2\n", "--- /dev/null\n+++ /etc/x.conf\n@@ -0,0 +1,2 @@\n+a = 1\n+b = 2\n"],
    [
      "a changed line",
      "a = 1\nb = 2\n",
      "a = 1\nb = 3\n",
      "--- /etc/x.conf\n+++ /etc/x.conf\n@@ -1,2 +1,2 @@\n a = 1\n-b = 2\n+b = 3\n",
    ],
    ["identical content", "a = 1\n", "a = 1\n", "--- /etc/x.conf\n+++ /etc/x.conf\n"],
    [
      "a missing final newline",
      "a = 1",
      "a = 1\n",
      "--- /etc/x.conf\n+++ /etc/x.conf\n@@ -1,1 +1,1 @@\n-a = 1\n\\ No newline at end of file\n+a = 1\n",
    ],
    [
      "content that looks like the banner",
      "=== x\n",
      "Index: y\n",
      "--- /etc/x.conf\n+++ /etc/x.conf\n@@ -1,1 +1,1 @@\n-=== x\n+Index: y\n",
    ],
    ["an empty file", "", "x\n", "--- /etc/x.conf\n+++ /etc/x.conf\n@@ -0,0 +1,1 @@\n+x\n"],
  ])("%s", (_what, before, after, expected) => {
    expect(fileDiff("/etc/x.conf", before, after)).toBe(expected);
  });

  it("never starts with the library's Index:/=== banner", () => {
    const d = fileDiff("/etc/sysctl.d/60-provision-tw-reuse.conf", "a\n", "b\n");
    expect(d.split("\n")[0]).toBe("--- /etc/sysctl.d/60-provision-tw-reuse.conf");
    expect(d).not.toMatch(/^Index: /m);
    expect(d).not.toMatch(/^=+$/m);
  });

  it("keeps three lines of context", () => {
    const before = Array.from({ length: 20 }, (_, i) => `line ${i}`).join("\n") + "\n";
    const after = before.replace("line 10\n", "line ten\n");
    const d = fileDiff("/f", before, after);
    expect(d).toContain("@@ -8,7 +8,7 @@");
    expect(d).toContain(" line 7\n");
    expect(d).not.toContain(" line 6\n");
    expect(d).toContain(" line 13\n");
    expect(d).not.toContain(" line 14\n");
  });
});
