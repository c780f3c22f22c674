import { Flags } from "@oclif/core";
import { RelayCommand } from "./base.js";

export default class Logs extends RelayCommand {
  static override description = "Print logs/relay.jsonl readably (time, level, message, fields), the last N lines; with --follow, go on printing as the relay writes.";
  static override examples = ["<%= config.bin %> logs --last 20", "<%= config.bin %> logs -f"];
  static override flags = {
    last: Flags.integer({ char: "n", description: "how many of the newest lines to print first", min: 0, default: 50 }),
    follow: Flags.boolean({ char: "f", description: "keep printing new lines until interrupted (follows the log across rotation)", default: false }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Logs);
    const paths = this.resolvePaths(flags.root);
    const [{ humanLine }, { open, stat }, { join }] = await Promise.all([import("../runtime/log.js"), import("node:fs/promises"), import("node:path")]);
    await (await import("../config/root.js")).requireRoot(paths);
    const file = join(paths.logs, "relay.jsonl");
    const print = (text: string) => {
      for (const line of text.split("\n")) {
        if (line.trim() === "") continue;
        const human = humanLine(line);
        process.stdout.write(human.endsWith("\n") ? human : `${human}\n`);
      }
    };
    /** Bytes from `from` to the end, and the new end. */
    const readFrom = async (from: number): Promise<{ text: string; end: number }> => {
      const handle = await open(file, "r").catch(() => null);
      if (!handle) return { text: "", end: 0 };
      try {
        const { size } = await handle.stat();
        const start = size < from ? 0 : from; // rotated: a new, shorter file
        const buffer = Buffer.alloc(size - start);
        await handle.read(buffer, 0, buffer.length, start);
        return { text: buffer.toString("utf8"), end: size };
      } finally {
        await handle.close();
      }
    };
    const size = (await stat(file).catch(() => null))?.size ?? 0;
    // The newest lines: read back from the end, about 1 KiB a line.
    let from = Math.max(0, size - Math.max(flags.last, 1) * 1024);
    const first = await readFrom(from);
    const lines = first.text.split("\n").filter((l) => l.trim() !== "");
    if (from > 0) lines.shift(); // the first may be cut
    if (flags.last > 0) print(lines.slice(-flags.last).join("\n"));
    from = first.end;
    if (!flags.follow) return;
    let partial = "";
    for (;;) {
      await new Promise((r) => setTimeout(r, 500));
      const next = await readFrom(from);
      if (next.end < from) partial = "";
      from = next.end;
      const text = partial + next.text;
      const cut = text.lastIndexOf("\n");
      print(text.slice(0, cut + 1));
      partial = text.slice(cut + 1);
    }
  }
}
