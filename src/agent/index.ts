/** agent/: the agent API — defineAgent, AgentContext and its socket types, owner credentials. */
export * from './define.js';
export * from './context.js';
export * from './credential.js';
