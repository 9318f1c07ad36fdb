// The agent SDK: defineAgent's checks, errorCode, and (at compile time) that the worker-side
// proxies satisfy the agent-facing ContextSocket and ContextServer types.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defineAgent, errorCode, type AgentContext, type ContextServer, type ContextSocket } from '../../../src/agent/index.js';
import type { PortServer, PortSocket } from '../../../src/host/agent-port.js';

// Compile-time conformance: if the worker's objects drift from the documented types, tsc fails.
type Assert<T extends true> = T;
export type SocketConforms = Assert<PortSocket extends ContextSocket ? true : false>;
export type ServerConforms = Assert<PortServer extends ContextServer ? true : false>;

test('defineAgent checks the shape and freezes it', () => {
  const def = defineAgent({ run(ctx: AgentContext) { return ctx.id; } });
  assert.ok(Object.isFrozen(def));
  assert.throws(() => defineAgent({} as never), (e: unknown) => errorCode(e) === 'FERRY_ERR_INVALID_ARGUMENT');
  assert.throws(() => defineAgent(null as never), (e: unknown) => errorCode(e) === 'FERRY_ERR_INVALID_ARGUMENT');
});

test('errorCode reads Ferry codes only', () => {
  assert.equal(errorCode(Object.assign(new Error('x'), { code: 'FERRY_ERR_POLICY_DENIED' })), 'FERRY_ERR_POLICY_DENIED');
  assert.equal(errorCode(Object.assign(new Error('x'), { code: 'ENOENT' })), undefined);
  assert.equal(errorCode(undefined), undefined);
});
