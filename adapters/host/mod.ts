/**
 * The host the program runs on or reaches: its inventory (what the agent reports), a target
 * to run commands on (this machine, or another over SSH) and the terminal's prompts.
 * @module
 */
export { readInventory } from "./inventory.ts";
export {
  type CommandResult,
  LocalTarget,
  type PasswordPrompt,
  type RunOptions,
  shellQuote,
  spawnCollect,
  SudoTarget,
  type Target,
  TargetError,
} from "./target.ts";
export { defaultKnownHostsFile, type HostKeyCheck, verifyHostKey } from "./host_key.ts";
export { parseSshTarget, type SshAddress, SshTarget, type SshTargetOptions } from "./ssh_target.ts";
export { askSecret, askYesNo } from "./terminal.ts";
