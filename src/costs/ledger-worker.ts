// A process of its own, forked by `relay run` (./ledger-aside.ts) with the root as its argument:
// brings state/costs.summary.json up to date from the whole cost ledger, tells its parent whether
// the summary is saved, and exits. Reading 100,000 records gets the reading code compiled by V8's
// optimizing compiler, and in the daemon that code stayed resident for the rest of its life.
import { LedgerSummary } from "./ledger-summary.js";

export type LedgerWorkerReply = { saved: true } | { saved: false; error: string };

const root = process.argv[2] ?? "";
let reply: LedgerWorkerReply;
try {
  const summary = await LedgerSummary.open(root);
  await summary.refresh();
  await summary.save();
  reply = { saved: true };
} catch (err) {
  reply = { saved: false, error: err instanceof Error ? err.message : String(err) };
}
// a parent killed meanwhile has closed the channel: the saved summary serves the next start
if (process.connected) process.send?.(reply, () => process.disconnect());
