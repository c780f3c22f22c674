import { RelayCommand } from "../base.js";
import { type ServiceKind, serviceFile, serviceFlags } from "./target.js";

export default class ServicePrint extends RelayCommand {
  static override summary = "Print the service that runs `relay run` on this root: a systemd unit (Linux), a launchd agent (macOS).";
  static override description = [
    "The unit runs relay run --root ROOT with this node and this relay, restarts it after a failure but not after a configuration error (exit 2), and loads no EnvironmentFile: the relay reads ROOT/.env itself, so edits to .env are never shadowed.",
    "On macOS it is a launchd agent property list (KeepAlive, RunAtLoad, logs in ROOT/logs/).",
  ].join("\n");
  static override examples = ["<%= config.bin %> service print --user --root ~/relay", "<%= config.bin %> service print --root ~/relay > relay.service"];
  static override enableJsonFlag = true;
  static override flags = serviceFlags;

  async run(): Promise<{ kind: ServiceKind; name: string; text: string }> {
    const { flags } = await this.parse(ServicePrint);
    const file = await serviceFile(this.resolvePaths(flags.root).root, flags);
    this.log(file.text.replace(/\n$/, ""));
    return { kind: file.kind, name: file.name, text: file.text };
  }
}
