// Where a conversation's system prompt is cut in two text blocks, so that its first call can write
// the first block with the 1-hour lifetime and the rest with the 5-minute one (the hedge of
// cache-policy.ts). The prompt cache matches block sequences: every request of the conversation
// renders the system prompt with this same cut, which therefore depends only on the prompt's
// text, the model's minimum cacheable prefix and the model's cache rates.
import { type CacheRates, firstCallHedge, minCacheablePrefixTokens, type SystemSplit } from "./cache-policy.js";

/** The relay's token estimate, as in estimatePromptTokens. */
export const CHARS_PER_TOKEN = 4;
/** A line break this far from the hedge's share (as a share of the prompt's characters) is still preferred to a space. */
const LINE_BREAK_REACH = 0.1;

/** The cut nearest `target` just after a character `isBreak` accepts, with text on both sides and at least `from` characters before it. */
function nearestCut(text: string, target: number, from: number, isBreak: (c: string) => boolean): number | null {
  const first = text.length - text.trimStart().length; // the first non-blank character
  const last = text.trimEnd().length - 1; // the last one
  let best: number | null = null;
  for (let at = Math.max(from, first + 1, 1); at <= last; at++) {
    if (best !== null && at > target && at - target >= Math.abs(best - target)) break; // later cuts only move away
    if (isBreak(text[at - 1] ?? "") && (best === null || Math.abs(at - target) < Math.abs(best - target))) best = at;
  }
  return best;
}

/**
 * The cut of the system prompt for the first call's hedge: the line break nearest the hedge's
 * share of its characters (no line break within reach: the nearest space), moved later when the
 * first block would be shorter than the model's minimum cacheable prefix (the API would not write
 * it). null when the prompt is too short to hold a cacheable first block and a second one, or has
 * no place to cut: its first call then writes the whole prefix with one lifetime.
 */
export function splitSystemPrompt(systemPrompt: string, model: string, rates: CacheRates): SystemSplit | null {
  const hedge = firstCallHedge(rates);
  if (!hedge) return null;
  const minChars = minCacheablePrefixTokens(model) * CHARS_PER_TOKEN;
  const length = systemPrompt.length;
  const target = Math.max(Math.round(length * hedge.share), minChars);
  if (target >= length) return null;
  const atLine = nearestCut(systemPrompt, target, minChars, (c) => c === "\n");
  const atLineNear = atLine !== null && Math.abs(atLine - target) <= length * LINE_BREAK_REACH;
  const at = atLineNear ? atLine : (nearestCut(systemPrompt, target, minChars, (c) => /\s/.test(c)) ?? atLine);
  if (at === null) return null;
  return { at, share: at / length, tokens: Math.ceil(at / CHARS_PER_TOKEN) };
}

/** The system prompt's text blocks: one, or two at the cut. */
export const systemBlocks = (systemPrompt: string, split: SystemSplit | null | undefined): string[] =>
  split && split.at > 0 && split.at < systemPrompt.length ? [systemPrompt.slice(0, split.at), systemPrompt.slice(split.at)] : [systemPrompt];
