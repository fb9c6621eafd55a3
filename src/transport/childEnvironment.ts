/** Variables that carry provision's secrets; no child process (ssh, ssh -G, a ProxyCommand) has any use for them. */
const SECRET_VARIABLES = ["PROVISION_BECOME_PASSWORD", "PROVISION_KEY_PASSPHRASE"];

/** This process's environment without provision's secrets: what every process it starts gets. */
export function childEnvironment(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !SECRET_VARIABLES.includes(name)));
}
