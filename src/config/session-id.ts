// A relay session id (config.yaml `sessions[].id`, hook --session): a module of its own so the
// commands can check one without loading the config code (yaml, dotenv, zod).
export const SESSION_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
