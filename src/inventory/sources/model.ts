import type { KeyPath } from "../../config/yamlFile.js";

/**
 * A file values were read from. YAML and JSON files locate every key path; INI files locate the
 * paths their parser recorded (`web:vars.ansible_port`, `web.host1.ansible_port`) and fall back to
 * the nearest recorded parent.
 */
export interface SourceFile {
  file: string;
  locate(path: KeyPath, at?: "key" | "value"): { line: number; col: number };
}

/** A place in a source file: errors about a host or group name point here. */
export interface Located {
  source: SourceFile;
  path: KeyPath;
}

/** A mapping of variables as one file wrote it; `basePath` is where the mapping sits in that file. */
export interface VarBlock {
  vars: Record<string, unknown>;
  source: SourceFile;
  basePath: KeyPath;
}

/**
 * What an inventory source declares, in the order it declares it: the same operations Ansible's
 * inventory plugins perform on InventoryData (add_group, add_child, add_host, set_variable), so
 * that several sources merge exactly as Ansible merges them.
 */
export type SourceEvent =
  | { kind: "group"; name: string; at: Located }
  | { kind: "child"; parent: string; child: string; at: Located }
  /** `group` is where the source lists the host: `all` or `ungrouped` for hosts outside any group (Ansible then files them under `ungrouped`). */
  /** `port` (from `host:2222`) becomes the host's ansible_port only where the host is first added, as in Ansible. */
  | { kind: "host"; group: string; name: string; at: Located; port?: number }
  | { kind: "groupVars"; group: string; block: VarBlock }
  | { kind: "hostVars"; host: string; block: VarBlock };

export interface ParsedSource {
  file: string;
  events: SourceEvent[];
}
