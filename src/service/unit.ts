// The systemd unit that runs `relay run` on one root (CONTRACT §10): its text, name and place.
// No EnvironmentFile: the relay reads ROOT/.env itself, where the real environment would win.
import { homedir } from "node:os";
import { basename, join } from "node:path";
import { EXIT } from "../errors.js";

export interface UnitSpec {
  root: string;
  /** Absolute path of the node binary */
  node: string;
  /** Absolute path of bin/relay.js */
  bin: string;
  /** A user unit (systemctl --user) rather than a system one */
  user: boolean;
  /** For a system unit: the account it runs as */
  runAs?: string;
  /** `relay agent` (transport: nats, a root on another host) instead of `relay run` */
  agent?: boolean;
}

/** relay-<root's basename>.service (relay-agent-… for `relay agent`), the basename cut down to characters safe in a unit name. */
export function unitName(root: string, agent = false): string {
  const name = basename(root)
    .replace(/[^A-Za-z0-9_.-]+/g, "-")
    .replace(/^[-.]+|[-.]+$/g, "")
    .slice(0, 64);
  return `relay-${agent ? "agent-" : ""}${name || "root"}.service`;
}

/** Where a unit goes: ~/.config/systemd/user (or $XDG_CONFIG_HOME/systemd/user), else /etc/systemd/system. */
export function unitDir(user: boolean, env: NodeJS.ProcessEnv = process.env, home = homedir()): string {
  if (!user) return "/etc/systemd/system";
  const config = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME.startsWith("/") ? env.XDG_CONFIG_HOME : join(home, ".config");
  return join(config, "systemd", "user");
}

/** A value systemd would expand: `%` starts a specifier. */
const noSpecifiers = (value: string): string => value.replace(/%/g, "%%");

/** One ExecStart= word: specifiers and variables escaped, quoted when it has spaces or quotes. */
export function execWord(word: string): string {
  const escaped = noSpecifiers(word).replace(/\$/g, "$$$$");
  return /^[^\s"'\\;]+$/.test(escaped) ? escaped : `"${escaped.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

export class UnitPathError extends Error {
  override name = "UnitPathError";
}

export function renderUnit(spec: UnitSpec): string {
  for (const path of [spec.root, spec.node, spec.bin]) {
    if (/[\n\r]/.test(path) || !path.startsWith("/")) throw new UnitPathError(`${JSON.stringify(path)} cannot go into a systemd unit (it must be an absolute path on one line)`);
  }
  const root = noSpecifiers(spec.root);
  const agent = spec.agent === true;
  const exec = [spec.node, spec.bin, agent ? "agent" : "run", "--root", spec.root].map(execWord).join(" ");
  return [
    "[Unit]",
    agent ? `Description=relay agent: this host's Claude Code sessions over NATS, root ${root}` : `Description=relay: Claude Code sessions to chat-Claude, root ${root}`,
    ...(spec.user ? [] : ["Wants=network-online.target", "After=network-online.target"]),
    "StartLimitIntervalSec=300",
    "StartLimitBurst=5",
    "",
    "[Service]",
    "Type=simple",
    ...(spec.user || spec.runAs === undefined ? [] : [`User=${spec.runAs}`]),
    `WorkingDirectory=${root}`,
    `ExecStart=${exec}`,
    "Restart=on-failure",
    // A configuration or usage error (exit 2) stays an error until someone edits config.yaml or .env.
    `RestartPreventExitStatus=${EXIT.usage}`,
    "RestartSec=5",
    // SIGTERM: relay run finishes the current step, persists, releases the lock and exits 0.
    "KillSignal=SIGTERM",
    "KillMode=mixed",
    "TimeoutStopSec=60",
    "StandardOutput=journal",
    "StandardError=journal",
    `SyslogIdentifier=${unitName(spec.root, agent).replace(/\.service$/, "")}`,
    "",
    "[Install]",
    `WantedBy=${spec.user ? "default.target" : "multi-user.target"}`,
    "",
  ].join("\n");
}

/** What to run after the unit is written. */
export function nextCommands(name: string, user: boolean): string[] {
  const ctl = user ? "systemctl --user" : "sudo systemctl";
  return [`${ctl} daemon-reload`, `${ctl} enable --now ${name}`, `journalctl ${user ? "--user " : ""}-u ${name} -f`];
}
