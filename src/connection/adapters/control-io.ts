/**
 * Our control requests, location lookups and RES signatures, for one connection end: the mechanism
 * under `core/control-requests.ts`, as `socket-slots.ts` is under `core/slots.ts`. The core names
 * each one by id ("send request N", "cancel N", "look the peer up as N", "sign RES N"); this sends
 * it through the host's control channel, asks the location service or hands the RES to the host's
 * batch signer, and gives every answer back to the core naming its id (one the core no longer
 * waits for changes nothing there: no "round" counters), then lets the endpoint carry out what it
 * came to.
 */
import { FerryError } from '../../util/index.js';
import type { AgentId } from '../../identity/index.js';
import type { ConnectionCore, ControlCommand } from '../core/index.js';
import type { PeerLocator } from '../checkpoint.js';
import type { LocationProof } from '../resume-proof.js';

/** Why a request still out is cancelled (its rejection changes nothing: the core moved on). */
const CANCELLED = new FerryError('FERRY_ERR_ABORTED', 'request cancelled: the connection moved on');

/** What the requests need of the host (the endpoint's `EndpointEnv` gives it). */
export interface ControlEnv {
  /** A control request to `to` ("ip:port"); rejects with a FerryError. */
  request(to: string, type: number, body: Buffer, opts?: { maxTries?: number; signal?: AbortSignal; timeoutMs?: number }): Promise<{ type: number; body: Buffer }>;
  /** The agent's location, waiting up to `waitMs` for an epoch newer than `newerThan`. */
  locate(agent: AgentId, newerThan: number, waitMs: number): Promise<PeerLocator | undefined>;
  /** This host's location proof for `agent` (its chain and batch signer); undefined: cannot prove. */
  locationProof?(agent: AgentId): LocationProof | undefined;
}

/** What the core asks of the control channel, the location service and the batch signer. */
export type ControlIOCommand = ControlCommand | { readonly kind: 'sign_res'; readonly id: number };

/** The control requests of one connection end in flight, by the core's ids. */
export class ControlIO {
  /** The abort of each cancellable request still out (a RES, the open's CONNECT), by id. */
  private readonly aborts = new Map<number, AbortController>();

  /** `now`: the host's clock; `drive`: carry out what an answer handed to the core came to. */
  constructor(
    private readonly env: ControlEnv,
    private readonly core: ConnectionCore,
    private readonly now: () => number,
    private readonly drive: () => void,
  ) {}

  /** Carry out `c`. */
  carryOut(c: ControlIOCommand): void {
    switch (c.kind) {
      case 'request': {
        let opts: { maxTries?: number; timeoutMs?: number; signal?: AbortSignal } = c.opts;
        if (c.cancellable) {
          const ac = new AbortController();
          this.aborts.set(c.id, ac);
          opts = { signal: ac.signal, ...c.opts };
        }
        this.env
          .request(c.to, c.type, c.body, opts)
          .then((reply) => {
            this.aborts.delete(c.id);
            this.core.replied(c.id, reply, this.now());
            this.drive();
          })
          .catch((err: unknown) => {
            this.aborts.delete(c.id);
            this.core.requestFailed(c.id, err, this.now());
            this.drive();
          });
        return;
      }
      case 'cancel': {
        const ac = this.aborts.get(c.id);
        this.aborts.delete(c.id);
        // With a reason: abort() without one builds a DOMException (and its stack) at every cancel.
        ac?.abort(CANCELLED);
        return;
      }
      case 'lookup':
        return void this.lookUp(c.id, c.agent, c.newerThan, c.waitMs);
      case 'sign_res':
        return this.signRes(c.id);
    }
  }

  /**
   * Lookup `id`. A location service that fails (unreachable, its store down) is a lookup without an
   * answer, never a rejection nobody handles (the callers are timers), which would end the process.
   */
  private async lookUp(id: number, agent: AgentId, newerThan: number, waitMs: number): Promise<void> {
    let loc: PeerLocator | undefined;
    try {
      loc = await this.env.locate(agent, newerThan, waitMs);
    } catch (err) {
      this.core.lookupFailed(id, err);
      return this.drive();
    }
    this.core.located(id, loc);
    this.drive();
  }

  /**
   * Our RES `id` goes with this host's location proof, signed by the host's batch signer at its
   * flush with every RES this host sends in this turn (PROTOCOL.md §4.4): the core builds it then
   * (`resToSign`), and the signature or the failure goes back with its id.
   */
  private signRes(id: number): void {
    const proof = this.env.locationProof?.(this.core.localAgent);
    if (!proof) return this.core.resUnsigned(id, new FerryError('FERRY_ERR_RESUME_UNPROVEN', 'no location proof'));
    proof.signer.enqueue({
      chain: proof.chain,
      build: () => this.core.resToSign(id),
      send: (p) => {
        this.core.resSigned(id, p, this.now());
        this.drive();
      },
      fail: (err) => {
        this.core.resUnsigned(id, err);
        this.drive();
      },
    });
  }
}
