// The first read of a long cost ledger, done in a process of its own (./ledger-worker.ts) when
// `relay run` starts on a ledger whose summary is missing or behind by more than ASIDE_BYTES
// (the first start after an upgrade, or after the summary was removed): the daemon then takes
// only the saved summary and the tail after it. Reading 100,000 records in the daemon left the
// code V8 optimized for it resident for the daemon's life: idle, 61.5 MB against 56 MB once the
// summary exists (Node 20, the bench's full root). In a worker thread it was still 60 MB (the
// thread's memory stays with the process); in a process of its own, 56 MB.
import type { LedgerWorkerReply } from "./ledger-worker.js";
import { packageFile } from "../package-files.js";

/** A ledger read longer than this (about 13,000 records) is done aside. */
export const ASIDE_BYTES = 4 * 1024 * 1024;

/** The worker's code: an entry of the bundle (scripts/bundle.mjs), the same whether the caller runs from dist/src/, dist/hot/ or under vitest. */
export const LEDGER_WORKER = packageFile("dist/hot/ledger-worker.js");

/** Summarize the ledger of `root` in the worker process and save it; the worker's answer, or why there is none. */
export async function summarizeAside(root: string): Promise<LedgerWorkerReply> {
  const { fork } = await import("node:child_process");
  return new Promise((resolve) => {
    // none of the relay's own Node options (an --inspect port would be taken twice)
    const child = fork(LEDGER_WORKER, [root], { execArgv: [], stdio: ["ignore", "ignore", "ignore", "ipc"] });
    child.once("message", (reply: LedgerWorkerReply) => resolve(reply));
    child.once("error", (err) => resolve({ saved: false, error: err.message }));
    // "close", not "exit": by then any message the worker sent has been delivered
    child.once("close", (code) => resolve({ saved: false, error: `the ledger worker exited with code ${code} before answering` }));
  });
}
