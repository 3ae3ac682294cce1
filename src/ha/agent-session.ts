/**
 * An agent's session in the state store (several hosts): one lease, kept alive every
 * `keepAliveMs`, that carries the agent's presence (agents/<host>) and its nodes' reports
 * (members/<node>), and — when this agent is the decider — the decider key and the leader keys.
 *
 * The guarantee a primary on this host gets from it (Patroni's): it stops accepting writes
 * before anyone else can be promoted. The decider promotes a standby of a primary elsewhere only
 * after that primary's agent fenced it on request, or once its session has ended (etcd deletes
 * agents/<host> when the lease expires, at least a TTL after the last keep-alive it took). The
 * agent counts its TTL from the moment it *sent* its last successful keep-alive, which is before
 * etcd took it, and stops its primaries a margin before that TTL runs out — so when the session
 * ends, they have already stopped. An agent frozen as a whole (SIGSTOP, a host that stalls)
 * cannot stop anything: the host's watchdog (./watchdog.ts), kept alive after each renewal while
 * a primary runs here, resets the host before the session ends. Without one, the old primary
 * may then accept writes from clients that still reach it until the host resumes and the agent
 * sees its session gone (docs/multi-host.md says so).
 */
import { performance } from 'node:perf_hooks';
import type { NodeRef } from '../config/load.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../obs/logger.js';
import { AGENT_KEYS } from './agent-rpc.js';
import type { AgentInfo } from './agent-rpc.js';
import type { NodeFacts, NodeOps } from './node-ops.js';
import type { LeaseId, StateStore } from './store.js';
import type { Watchdog } from './watchdog.js';

export interface SessionOptions {
  readonly host: string;
  readonly ttlMs: number;
  /** How often the lease is kept alive (default TTL/4, at most 1 s). */
  readonly keepAliveMs?: number;
  /** How long before the TTL runs out the primaries are stopped (default TTL/4, at least 1 s). */
  readonly marginMs?: number;
  readonly info: AgentInfo;
  /** The host's watchdog, armed while a local primary runs (none: not used). */
  readonly watchdog?: Watchdog | null;
}

export class AgentSession {
  private leaseId: LeaseId | null = null;
  /** performance.now() when the last successful keep-alive (or grant) was sent. */
  private lastOkSentAt = 0;
  private lastKeepAliveAt = 0;
  private readonly reported = new Map<string, string>();
  /** Local primaries this session's guard stopped, until they run again (reported as such). */
  private readonly selfStopped = new Set<string>();
  /** The primaries were stopped for want of a session; cleared once a new one exists. */
  private fenced = false;
  private storeDown = false;
  private closed = false;
  private sessionStart = 0;
  private loop: Promise<void> | null = null;
  private guard: NodeJS.Timeout | null = null;
  private stopping: Promise<void> | null = null;

  constructor(
    private readonly store: StateStore,
    private readonly ops: NodeOps,
    private readonly localNodes: () => NodeRef[],
    private readonly o: SessionOptions,
    private readonly log: Logger,
  ) {}

  get lease(): LeaseId | null {
    return this.leaseId;
  }

  /** Whether the guard stopped this local node and it has not run since. */
  isSelfStopped(node: string): boolean {
    return this.selfStopped.has(node);
  }

  /** How long the current session has lasted (0: none). */
  get ageMs(): number {
    return this.leaseId === null ? 0 : performance.now() - this.sessionStart;
  }

  private get keepAliveMs(): number {
    return this.o.keepAliveMs ?? Math.min(1000, this.o.ttlMs / 4);
  }

  private get marginMs(): number {
    return this.o.marginMs ?? guardMarginMs(this.o.ttlMs);
  }

  /**
   * Starts the session's own two loops, apart from the agent's (whose steps may wait on other
   * things): one keeps the session (a new one when it ended) and reports the nodes; a guard looks
   * every 100 ms whether the session can still vouch for the primaries, and stops them if not.
   * Resolves after the first keep-alive attempt.
   */
  async start(): Promise<void> {
    await this.turn();
    const loop = async () => {
      while (!this.closed) {
        await new Promise((r) => setTimeout(r, Math.min(250, this.keepAliveMs)));
        if (!this.closed) await this.turn();
      }
    };
    this.loop = loop();
    this.guard = setInterval(() => {
      if (this.closed || this.stopping) return;
      if (this.leaseId !== null && performance.now() - this.lastOkSentAt <= this.o.ttlMs - this.marginMs)
        return;
      this.stopping = this.stopPrimaries().finally(() => (this.stopping = null));
    }, 100);
  }

  private async turn(): Promise<void> {
    try {
      await this.keep();
      await this.report();
      if (this.storeDown) this.log.info(`agent ${this.o.host}: the state store answers again`);
      this.storeDown = false;
    } catch (e) {
      if (!this.storeDown)
        this.log.warn(`agent ${this.o.host}: the state store does not answer (${errorMessage(e)})`);
      this.storeDown = true;
    }
  }

  private async keep(): Promise<void> {
    const now = performance.now();
    if (this.leaseId !== null && now - this.lastKeepAliveAt < this.keepAliveMs) return;
    this.lastKeepAliveAt = now;
    if (this.leaseId !== null) {
      const sent = performance.now();
      if (await this.store.keepAlive(this.leaseId)) {
        this.lastOkSentAt = sent;
        this.renewed();
        return;
      }
      this.log.warn(
        `agent ${this.o.host}: its session ended; its primaries were stopped, a new session starts`,
      );
      this.leaseId = null;
      this.reported.clear();
    }
    // The session of this host's agent before a restart is taken over while it lasts (one agent
    // per host: its data directory's lock says so), so that its primaries stay vouched for.
    const existing = await this.store.get(AGENT_KEYS.agent(this.o.host));
    if (existing?.lease) {
      const sent = performance.now();
      if (await this.store.keepAlive(existing.lease)) {
        await this.store.put(AGENT_KEYS.agent(this.o.host), JSON.stringify(this.o.info), {
          lease: existing.lease,
        });
        this.leaseId = existing.lease;
        this.sessionStart = sent;
        this.lastOkSentAt = sent;
        this.renewed();
        this.log.info(`agent ${this.o.host}: the session of the previous agent of this host taken over`);
        return;
      }
    }
    const sent = performance.now();
    const lease = await this.store.grantLease(this.o.ttlMs);
    const rev = await this.store.compareAndSet(
      AGENT_KEYS.agent(this.o.host),
      0,
      JSON.stringify(this.o.info),
      {
        lease,
      },
    );
    if (rev === null) {
      await this.store.revokeLease(lease).catch(() => undefined);
      return;
    }
    this.leaseId = lease;
    this.sessionStart = sent;
    this.lastOkSentAt = sent;
    this.renewed();
    if (this.fenced) this.log.info(`agent ${this.o.host}: a new session; the decider brings its nodes back`);
    this.fenced = false;
  }

  /**
   * The session was renewed: the host may run its primaries a TTL more from when the renewal was
   * sent, so the watchdog is kept alive now (its timeout is under the TTL minus the margin, which
   * covers the renewal's round trip); it is armed while a local primary runs, disarmed otherwise.
   */
  private renewed(): void {
    const wd = this.o.watchdog;
    if (!wd) return;
    if (!this.runsPrimary()) wd.disable();
    else if (wd.active) wd.keepalive();
    else wd.activate();
  }

  private runsPrimary(): boolean {
    return this.localNodes().some((n) => {
      const f = this.ops.facts(n);
      return f?.running === true && !f.standbyDir;
    });
  }

  /** members/<node> for every local node whose facts changed (all of them in a new session). */
  private async report(): Promise<void> {
    const lease = this.leaseId;
    if (lease === null) return;
    for (const n of this.localNodes()) {
      const own: NodeFacts | null = this.ops.facts(n);
      if (!own) continue;
      if (own.running) this.selfStopped.delete(n.name);
      const facts: NodeFacts = this.selfStopped.has(n.name) ? { ...own, selfStopped: true } : own;
      const text = JSON.stringify(facts);
      if (this.reported.get(n.name) === text) continue;
      await this.store.put(AGENT_KEYS.member(n.name), text, { lease });
      this.reported.set(n.name, text);
    }
  }

  /** The nodes' facts change outside the loop (a command ran): report at the next turn. */
  invalidate(): void {
    this.reported.clear();
  }

  /**
   * No session to vouch for them: every local node that runs as a primary (no standby.signal) is
   * stopped at once (immediate shutdown). Its data directory stays a primary's: if nobody else
   * was promoted meanwhile, the decider starts it again; otherwise it rejoins with pg_rewind.
   */
  private async stopPrimaries(): Promise<void> {
    for (const n of this.localNodes()) {
      const f = this.ops.facts(n);
      if (!f?.running || f.standbyDir) continue;
      this.log.error(
        { node: n.name },
        `agent ${this.o.host}: no session for ${Math.round((performance.now() - this.lastOkSentAt) / 1000)} s ` +
          `(state store unreachable); stopping primary ${n.name}`,
      );
      this.fenced = true;
      this.selfStopped.add(n.name);
      await this.ops.stopNode(n, 'immediate').catch(async (e: unknown) => {
        this.log.error({ node: n.name }, `stopping ${n.name} failed (${errorMessage(e)}); killing it`);
        await this.ops.fence(n);
      });
    }
    // Nothing left here for the watchdog to stop.
    if (!this.runsPrimary()) this.o.watchdog?.disable();
  }

  /** Ends the session (clean stop): its keys go at once. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.guard) clearInterval(this.guard);
    await this.loop;
    await this.stopping;
    const lease = this.leaseId;
    this.leaseId = null;
    if (lease) await this.store.revokeLease(lease).catch(() => undefined);
    this.o.watchdog?.disable();
  }
}

/** How long before its session's TTL runs out an agent stops its primaries (TTL/4, at least 1 s). */
export function guardMarginMs(ttlMs: number): number {
  return Math.max(1000, ttlMs / 4);
}
