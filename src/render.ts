import { readFileSync } from "node:fs";
import { join } from "node:path";
import Handlebars from "handlebars";
import { TEMPLATES_DIR } from "./installRoot.js";
import { thousands } from "./output/words.js";

/** The only place handlebars is used. Rendering is pure: same template and data, same bytes. */
const hb = Handlebars.create();

const COMMENT_WIDTH = 96;

/** `{{comment text}}`: the text as `# ` comment lines wrapped at 96 columns. */
hb.registerHelper("comment", (text: unknown) => new Handlebars.SafeString(commentLines(String(text ?? ""))));
/** `{{thousands n}}`: 28232 → 28,232, so the numbers in a why read at a glance. */
hb.registerHelper("thousands", (n: unknown) => thousands(Number(n)));

export function commentLines(text: string): string {
  const out: string[] = [];
  for (const paragraph of text.split(/\n/)) {
    let line = "#";
    for (const word of paragraph.split(/\s+/).filter(Boolean)) {
      if (line.length + 1 + word.length > COMMENT_WIDTH && line !== "#") {
        out.push(line);
        line = "#";
      }
      line += ` ${word}`;
    }
    out.push(line);
  }
  return out.join("\n");
}

const cache = new Map<string, Handlebars.TemplateDelegate>();

export function renderTemplate(role: string, name: string, data: Record<string, unknown>): string {
  const file = join(TEMPLATES_DIR, role, name);
  let template = cache.get(file);
  if (!template) {
    // noEscape: these are config files, not HTML; values are validated before they get here.
    template = hb.compile(readFileSync(file, "utf8"), { noEscape: true, strict: true });
    cache.set(file, template);
  }
  return template(data);
}
