import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { DEFAULT_PLAYBOOK } from "./installRoot.js";

export interface PlaybookChoice {
  file: string;
  /** Why a playbook found in the project was passed over; printed, never silent. */
  notice?: string;
}

const PLAY_KEYS = new Set(["name", "hosts", "become", "rollout", "roles"]);

/**
 * The playbook used without -p: `./provision.yaml`, else `./playbooks/site.yaml` when it is
 * provision's (inside an Ansible repository it usually is Ansible's own: plays with tasks), else
 * the bundled one. A passed-over site.yaml is named in `notice`.
 */
export function choosePlaybook(
  cwd: string = process.cwd(),
  isRoleName: (name: string) => boolean = () => true,
): PlaybookChoice {
  const own = join(cwd, "provision.yaml");
  if (existsSync(own)) return { file: own };
  const site = join(cwd, "playbooks", "site.yaml");
  if (!existsSync(site)) return { file: DEFAULT_PLAYBOOK };
  const foreign = foreignPlaybookReason(site, isRoleName);
  if (foreign === null) return { file: site };
  return {
    file: DEFAULT_PLAYBOOK,
    notice: `playbooks/site.yaml is not provision's playbook (${foreign}), so it is not used; using the bundled playbook (${DEFAULT_PLAYBOOK}). Put provision's plays in ./provision.yaml or pass -p FILE.`,
  };
}

/** Null when the file looks like provision's playbook; else what gives it away as someone else's. */
function foreignPlaybookReason(file: string, isRoleName: (name: string) => boolean): string | null {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return null; // unreadable: let the loader report it where it is used
  }
  const playKey =
    /^(?:-\s+|\s{2,})(tasks|pre_tasks|post_tasks|handlers|import_playbook|include_playbook|vars_files|gather_facts|serial|strategy)\s*:/m.exec(
      text,
    );
  if (playKey) return `its plays have ${playKey[1]}:, which provision's plays don't`;
  const role = /^\s*(?:-\s+)?role:\s*["']?([\w.-]+)/m.exec(text) ?? /^\s*-\s+([a-z][\w.-]*)\s*$/m.exec(text);
  if (role?.[1] && !isRoleName(role[1]) && !PLAY_KEYS.has(role[1]))
    return `it applies role ${role[1]}, which is not one of provision's`;
  return null;
}
