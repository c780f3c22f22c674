// What JC's phone shows for each fact the machines announce: a question (with buttons bound to
// that question), a failure streak starting or ending, a pause, an error.
import type { NotifyParams } from "../../machines/types.js";
import type { Notification, NtfyAction } from "./ntfy.js";

export interface NotificationLinks {
  /** JC's reply topic URL: what is published there is taken like state/jc_input.txt */
  replyUrl?: string;
  statusUrl?: string;
}

export const APPROVE_TEXT = "Approved: go ahead.";
export const REJECT_TEXT = "Rejected: do not do that; propose another way.";

/** An answer bound to one question (CONTRACT §6's JSON form), or plain text when there is no id. */
const answerBody = (text: string, questionId?: string): string => (questionId ? JSON.stringify({ text, question: questionId }) : text);

/** The answers a permission prompt's buttons send: "allow…" allows, anything else denies. */
export const ALLOW_TEXT = "allow";
export const DENY_TEXT = "deny: JC refused this from the phone";

/** Two answer buttons published to JC's reply topic, and the page. */
function answerActions(buttons: readonly [string, string][], links: NotificationLinks, questionId?: string): NtfyAction[] {
  const actions: NtfyAction[] = [];
  // No credential in a button: NTFY_TOKEN never goes into a notification (CONTRACT §8). On a
  // server with access control the reply topic is made writable by everyone (write-only), as the
  // README says: whoever can read the notification may answer, and can do nothing else.
  if (links.replyUrl) {
    for (const [label, text] of buttons) {
      actions.push({ action: "http", label, url: links.replyUrl, method: "POST", body: answerBody(text, questionId), clear: true });
    }
  }
  if (links.statusUrl) actions.push({ action: "view", label: "Status", url: links.statusUrl });
  return actions;
}

/** The buttons of a needs-JC notification: answers published to JC's reply topic, and the page. */
export function needsJcActions(links: NotificationLinks = {}, questionId?: string): NtfyAction[] {
  return answerActions([["Approve", APPROVE_TEXT], ["Reject", REJECT_TEXT]], links, questionId);
}

/** The buttons of a permission prompt: Allow and Deny, bound to the prompt's id. */
export function permissionActions(links: NotificationLinks = {}, questionId?: string): NtfyAction[] {
  return answerActions([["Allow", ALLOW_TEXT], ["Deny", DENY_TEXT]], links, questionId);
}

export function notification(p: NotifyParams, links?: NotificationLinks): Notification {
  const start = p.message.length > 600 ? `${p.message.slice(0, 600)}…` : p.message;
  switch (p.kind) {
    case "needsJc": {
      const actions = needsJcActions(links, p.questionId);
      const how = p.questionId ? `relay jc --question ${p.questionId} "…"` : `relay jc "…"`;
      return {
        title: `relay: ${p.session ?? "a session"} needs JC`,
        message: `${start}\n\nAnswer with: ${how} (or "@${p.session}: …" to send directly)${links?.replyUrl ? ", or publish your answer to your reply topic" : ""}`,
        priority: 4,
        tags: ["raising_hand"],
        ...(actions.length > 0 ? { actions } : {}),
      };
    }
    case "permission": {
      const actions = permissionActions(links, p.questionId);
      return {
        title: `relay: ${p.session ?? "a session"} asks permission`,
        message: `${start}\n\nAllow with: relay jc --question ${p.questionId ?? "ID"} allow (any other answer denies, with your words as the reason; no answer in time denies)`,
        priority: 4,
        tags: ["lock"],
        ...(actions.length > 0 ? { actions } : {}),
      };
    }
    case "stopFailure":
      return { title: `relay: ${p.session ?? "a session"} stopped on an API error`, message: p.message.length > 1200 ? `${p.message.slice(0, 1200)}…` : p.message, priority: 4, tags: ["warning"] };
    case "failureStarted":
      return { title: "relay: API calls failing, retrying", message: start, priority: 3, tags: ["warning"] };
    case "failureEnded":
      return { title: "relay: API calls work again", message: start, priority: 2, tags: ["white_check_mark"] };
    case "paused":
      return { title: "relay paused: the API refuses calls", message: `${start}\n\nFix it, then: relay resume`, priority: 5, tags: ["no_entry"] };
    case "error":
      return { title: "relay: error", message: start, priority: 4, tags: ["x"] };
  }
}
