import type { StateValue } from "xstate";

/** The state value as a string, nested states joined with "." (CONTRACT §9). */
export const stateName = (value: StateValue): string =>
  typeof value === "string" ? value : Object.entries(value).map(([k, v]) => (v === undefined ? k : `${k}.${stateName(v)}`)).join(",");
