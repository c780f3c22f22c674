// oclif's command_not_found hook: an unknown command is one line on stderr naming the closest
// commands ("did you mean"), exit 2, instead of oclif's bare "command X not found".
import type { Hook } from "@oclif/core";
import { EXIT } from "../errors.js";
import { asksForJson } from "./base.js";

/** Edit distance with adjacent transpositions (so "stauts" is one step from "status"). */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  const at = (i: number, j: number) => d[i]?.[j] ?? Number.POSITIVE_INFINITY;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, at(i - 2, j - 2) + 1);
      const row = d[i];
      if (row) row[j] = best;
    }
  }
  return at(a.length, b.length);
}

/** The commands `typed` most likely meant, best first: a few typos away, or a start of one. */
export function closestCommands(typed: string, commands: readonly string[]): string[] {
  const wanted = typed.toLowerCase();
  const scored = commands
    .map((id) => ({ id, score: id.startsWith(wanted) && wanted.length >= 2 ? 0.5 : distance(wanted, id) }))
    .filter((c) => c.score <= Math.max(1, Math.min(3, Math.floor(c.id.length / 3))));
  return scored.sort((x, y) => x.score - y.score || x.id.localeCompare(y.id)).map((c) => c.id).slice(0, 3);
}

/** What to say about an unknown command (ids as oclif has them: topics joined by ":"). */
export function notFoundMessage(id: string, commandIds: readonly string[]): string {
  const spaced = (s: string) => s.replace(/:/g, " ");
  const suggestions = closestCommands(id, commandIds).map((c) => `relay ${spaced(c)}`);
  const hint = suggestions.length > 0 ? `: did you mean ${suggestions.join(" or ")}?` : "";
  return `"${spaced(id)}" is not a relay command${hint} (relay help lists them)`;
}

const hook: Hook.CommandNotFound = function (opts) {
  const ids = opts.config.commands.filter((c) => !c.hidden).map((c) => c.id);
  const message = notFoundMessage(opts.id, ids);
  if (asksForJson(opts.argv ?? [])) process.stdout.write(`${JSON.stringify({ error: message })}\n`);
  else process.stderr.write(`relay: ${message}\n`);
  this.exit(EXIT.usage);
  return Promise.resolve();
};

export default hook;
