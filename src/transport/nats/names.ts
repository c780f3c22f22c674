// The names of everything the relay keeps on the server, from the prefix (CONTRACT §11): streams
// RELAY_*, buckets relay_*, subjects relay.*. Session ids may hold a dot, which a subject token
// cannot: it is written as "~" there (never part of a session id, so the mapping is reversible).

export interface NatsNames {
  prefix: string;
  envStream: string;
  jcStream: string;
  rejectStream: string;
  dispatchBucket: string;
  statusBucket: string;
  agentsBucket: string;
  /** the relay's durable consumers */
  envConsumer: "relay";
  jcConsumer: "relay-jc";
  envSubject(session: string, envId: string): string;
  envFilter: string;
  jcSubject(agent: string, claimId: string): string;
  jcFilter: string;
  rejectSubject(session: string, envId: string): string;
  rejectFilter(session: string): string;
  rejectConsumer(session: string): string;
  /** the raw subject of a dispatch slot (a PUT with an expected last sequence goes here) */
  slotSubject(session: string): string;
}

export const subjectToken = (id: string): string => id.replaceAll(".", "~");

export function natsNames(prefix: string): NatsNames {
  const upper = prefix.toUpperCase().replaceAll("-", "_");
  const dispatchBucket = `${prefix}_dispatch`;
  return {
    prefix,
    envStream: `${upper}_ENV`,
    jcStream: `${upper}_JC`,
    rejectStream: `${upper}_REJECT`,
    dispatchBucket,
    statusBucket: `${prefix}_status`,
    agentsBucket: `${prefix}_agents`,
    envConsumer: "relay",
    jcConsumer: "relay-jc",
    envSubject: (session, envId) => `${prefix}.env.${subjectToken(session)}.${envId}`,
    envFilter: `${prefix}.env.>`,
    jcSubject: (agent, claimId) => `${prefix}.jc.${agent}.${subjectToken(claimId)}`,
    jcFilter: `${prefix}.jc.>`,
    rejectSubject: (session, envId) => `${prefix}.rejected.${subjectToken(session)}.${envId}`,
    rejectFilter: (session) => `${prefix}.rejected.${subjectToken(session)}.>`,
    rejectConsumer: (session) => `rej-${subjectToken(session).replaceAll("~", "_")}`,
    slotSubject: (session) => `$KV.${dispatchBucket}.${session}`,
  };
}

/** Headers the agents put on an envelope. */
export const H = {
  session: "Relay-Session",
  file: "Relay-File",
  mtime: "Relay-Mtime",
  agent: "Relay-Agent",
  reason: "Relay-Reason",
  at: "Relay-At",
} as const;
