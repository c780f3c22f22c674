// What JC's phone shows for each fact the machines announce: a question (with buttons bound to
// that question), a failure streak starting or ending, a pause, an error.
import type { NotifyParams } from "../../machines/types.js";
import type { Notification, NtfyAction } from "./ntfy.js";

export interface NotificationLinks {
  /** JC's reply topic URL: what is published there is taken like state/jc_input.txt */
  replyUrl?: string;
  statusUrl?: string;
  /** sent with the buttons' requests, for ntfy servers with access control */
  token?: string;
}

export const APPROVE_TEXT = "Approved: go ahead.";
export const REJECT_TEXT = "Rejected: do not do that; propose another way.";

/** An answer bound to one question (CONTRACT §6's JSON form), or plain text when there is no id. */
const answerBody = (text: string, questionId?: string): string => (questionId ? JSON.stringify({ text, question: questionId }) : text);

/** The buttons of a needs-JC notification: answers published to JC's reply topic, and the page. */
export function needsJcActions(links: NotificationLinks = {}, questionId?: string): NtfyAction[] {
  const actions: NtfyAction[] = [];
  const headers = links.token ? { Authorization: `Bearer ${links.token}` } : undefined;
  if (links.replyUrl) {
    actions.push({ action: "http", label: "Approve", url: links.replyUrl, method: "POST", body: answerBody(APPROVE_TEXT, questionId), clear: true, ...(headers ? { headers } : {}) });
    actions.push({ action: "http", label: "Reject", url: links.replyUrl, method: "POST", body: answerBody(REJECT_TEXT, questionId), clear: true, ...(headers ? { headers } : {}) });
  }
  if (links.statusUrl) actions.push({ action: "view", label: "Status", url: links.statusUrl });
  return actions;
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
