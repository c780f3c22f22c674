import { access, mkdir, readFile, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { Flags } from "@oclif/core";
import { RelayCommand, UsageError } from "../base.js";
import { type ServiceKind, serviceFile, serviceFlags } from "./target.js";

const WHY: Record<string, string> = { EACCES: "permission denied", EPERM: "permission denied", EROFS: "read-only file system", ENOENT: "its directory cannot be created" };
export const errCode = (err: unknown): string => (typeof err === "object" && err !== null && "code" in err ? String(err.code) : "");
/** Why a file in a service directory could not be written or removed, in words. */
export const whyRefused = (err: unknown): string | null => WHY[errCode(err)] ?? null;

/** mkdir -p, one level at a time (a recursive mkdir can spin forever under /proc). */
async function makeDirs(dir: string): Promise<void> {
  const { isErrno } = await import("../../store/files.js");
  const missing: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    const st = await stat(d).catch((err: unknown) => {
      if (isErrno(err, "ENOENT")) return null;
      throw err;
    });
    if (st) {
      if (!st.isDirectory()) throw new UsageError(`${d} is not a directory`);
      break;
    }
    missing.unshift(d);
    if (dirname(d) === d) break;
  }
  for (const d of missing) await mkdir(d);
}

export default class ServiceInstall extends RelayCommand {
  static override summary = "Write the service that runs `relay run` on this root: a systemd unit (Linux), a launchd agent (macOS).";
  static override description = [
    "systemd: ~/.config/systemd/user/relay-<name>.service with --user, else /etc/systemd/system/relay-<name>.service (needs sudo).",
    "macOS: ~/Library/LaunchAgents/claude-code-relay.<name>.plist.",
    "It prints the commands that enable and start it; writing the same file again changes nothing. relay service uninstall removes it.",
  ].join("\n");
  static override examples = [
    { description: "A user unit (no sudo); then enable it as printed", command: "<%= config.bin %> service install --user --root ~/relay" },
    { description: "A system unit that runs as you", command: "sudo <%= config.bin %> service install --root ~/relay" },
    { description: "On another host (transport: nats): a user unit for relay agent", command: "<%= config.bin %> service install --agent --user --root ~/relay" },
  ];
  static override enableJsonFlag = true;
  static override flags = {
    ...serviceFlags,
    "unit-dir": Flags.string({ description: "write the unit (or agent) into this directory instead" }),
  };

  async run(): Promise<{ kind: ServiceKind; path: string; name: string; changed: boolean; next: string[] }> {
    const { flags } = await this.parse(ServiceInstall);
    const paths = this.resolvePaths(flags.root);
    const [{ loadEnv }, { isErrno, writeAtomic }] = await Promise.all([import("../../config/config.js"), import("../../store/files.js")]);
    const file = await serviceFile(paths.root, { user: flags.user, agent: flags.agent, platform: flags.platform, dir: flags["unit-dir"] });
    const { path } = file;

    const current = await readFile(path, "utf8").catch((err: unknown) => {
      if (isErrno(err, "ENOENT")) return null;
      throw err;
    });
    const changed = current !== file.text;
    if (changed) {
      try {
        await makeDirs(file.dir);
        await writeAtomic(path, file.text);
      } catch (err) {
        const why = whyRefused(err);
        if (why !== null) throw new UsageError(`cannot write ${path}: ${why}; ${file.kind === "systemd" ? "run it with sudo, or use --user for a user unit" : "check the directory's owner"}`);
        throw err;
      }
    }
    this.log(changed ? `wrote ${path}` : `${path} is already up to date`);
    if (!(await access(paths.config).then(() => true, () => false))) {
      this.logToStderr(`relay: note: ${paths.config} does not exist yet; run relay init ${paths.root} (or the first start creates it with commented defaults)`);
    }
    // an agent needs no key: the relay on the other host makes the calls
    if (!flags.agent && (await loadEnv(paths, {})).ANTHROPIC_API_KEY === undefined) {
      this.logToStderr(`relay: note: the service reads only ${paths.env} and its own environment: put ANTHROPIC_API_KEY=... in ${paths.env}`);
    }
    this.log("next:");
    for (const command of file.next) this.log(`  ${command}`);
    if (file.kind === "systemd" && flags.user) this.log("to keep it running while you are logged out: loginctl enable-linger \"$USER\"");
    return { kind: file.kind, path, name: file.name, changed, next: file.next };
  }
}
