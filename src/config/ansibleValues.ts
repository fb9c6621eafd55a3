/**
 * Values Ansible's YAML loader tags: `!vault` (inline ciphertext) and `!unsafe` (text never
 * templated). provision never decrypts or templates; it carries them so `provision inventory`
 * prints them as ansible-inventory does, and refuses them where it would have to read them.
 */
export class VaultValue {
  constructor(readonly ciphertext: string) {}
  toJSON(): { __ansible_vault: string } {
    return { __ansible_vault: this.ciphertext };
  }
}

export class UnsafeValue {
  constructor(readonly text: string) {}
  toJSON(): { __ansible_unsafe: string } {
    return { __ansible_unsafe: this.text };
  }
}

/** JSON from ansible-inventory writes tagged values as one-key mappings; read them back as the tags they were. */
export function fromAnsibleJson(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(fromAnsibleJson);
  if (value === null || typeof value !== "object" || value instanceof VaultValue || value instanceof UnsafeValue)
    return value;
  const keys = Object.keys(value);
  const obj = value as Record<string, unknown>;
  if (keys.length === 1 && keys[0] === "__ansible_vault" && typeof obj.__ansible_vault === "string")
    return new VaultValue(obj.__ansible_vault);
  if (keys.length === 1 && keys[0] === "__ansible_unsafe" && typeof obj.__ansible_unsafe === "string")
    return new UnsafeValue(obj.__ansible_unsafe);
  return Object.fromEntries(keys.map((k) => [k, fromAnsibleJson(obj[k])]));
}

/** A string Ansible would template: provision cannot know what it renders to. */
export function isTemplate(value: unknown): value is string {
  return typeof value === "string" && /\{\{|\{%|\{#/.test(value);
}
