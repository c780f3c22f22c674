import { Flags } from "@oclif/core";
import { RelayCommand } from "./base.js";
import { runRelay } from "./run-action.js";

export default class Run extends RelayCommand {
  static override examples = [{ description: "Try it: a fixed acknowledgement, no key, no API call", command: "<%= config.bin %> run --dry-run --root ~/relay" }, "<%= config.bin %> run --root ~/relay --http 8080"];
  static override description = "Run the relay daemon in the foreground (SIGINT/SIGTERM: finish the current step, exit 0; SIGHUP: reload config).";
  static override flags = {
    "dry-run": Flags.boolean({ description: "reply with a fixed acknowledgement instead of calling the API (no key needed)" }),
    http: Flags.string({ description: "also serve the status page on [HOST:]PORT (default host 127.0.0.1; config.yaml: status_http)", helpValue: "[HOST:]PORT" }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Run);
    const code = await runRelay(flags, this.resolvePaths(flags.root));
    if (code !== 0) this.exit(code);
  }
}
