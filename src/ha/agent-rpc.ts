/**
 * With several hosts, one `pgscale agent` per database host, all around one etcd. What an agent
 * publishes and how the decider (the agent that runs the decide loop) reaches nodes on other
 * hosts, all through the state store — no other channel between hosts, so nothing else to secure:
 *
 *   agents/<host>          the agent's presence, under its session lease (gone when it is)
 *   members/<node>         the node's facts (NodeFacts), refreshed by its agent, same lease
 *   commands/<host>/<id>   an operation the decider asks of that host's agent
 *   results/<id>           its outcome, written by the agent
 *
 * RemoteNodeOps is the decider's side (NodeOps for nodes elsewhere); CommandRunner the agent's.
 * A node whose agent is gone (its session ended: dead, or cut off from etcd for a whole TTL) has
 * no facts, and fencing it succeeds at once: an agent stops its primaries before its session can
 * end (agent-session.ts).
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { NodeRef } from '../config/load.js';
import { ErrorCodes, errorMessage } from '../errors.js';
import type { Logger } from '../obs/logger.js';
import { HaError, sleep } from './group-state.js';
import type { NodeFacts, NodeOps } from './node-ops.js';
import type { LeaseId, StateStore } from './store.js';

export const AGENT_KEYS = {
  agent: (host: string) => `agents/${host}`,
  agents: 'agents/',
  member: (node: string) => `members/${node}`,
  members: 'members/',
  commands: (host: string) => `commands/${host}/`,
  command: (host: string, id: string) => `commands/${host}/${id}`,
  result: (id: string) => `results/${id}`,
  decider: 'decider',
};

/** What an agent says of itself in agents/<host>. */
export interface AgentInfo {
  readonly host: string;
  readonly pid: number;
  readonly started_at: string;
  readonly version: string;
}

export type CommandOp =
  | 'fence'
  | 'stop_fast'
  | 'stop_immediate'
  | 'start_primary'
  | 'start_standby'
  | 'rejoin'
  | 'repoint'
  | 'mark_for_rejoin'
  | 'write_primary_conf';

export interface Command {
  readonly op: CommandOp;
  readonly node: string;
  /** The primary to follow (start_standby, rejoin, repoint). */
  readonly primary?: string;
}

interface Outcome {
  readonly ok: boolean;
  readonly value?: unknown;
  readonly error?: string;
}

/** How long the decider waits for each operation's outcome. */
const OP_TIMEOUT_MS: Record<CommandOp, number> = {
  fence: 10_000,
  stop_fast: 130_000,
  stop_immediate: 30_000,
  start_primary: 130_000,
  start_standby: 130_000,
  rejoin: 60 * 60_000,
  repoint: 30_000,
  mark_for_rejoin: 10_000,
  write_primary_conf: 10_000,
};

/** Reads members/ once per decide cycle: the facts of every node elsewhere, as reported. */
export class MemberReports {
  private facts = new Map<string, NodeFacts>();
  private agents = new Set<string>();

  constructor(private readonly store: () => StateStore) {}

  async refresh(): Promise<void> {
    const [members, agents] = await Promise.all([
      this.store().list(AGENT_KEYS.members),
      this.store().list(AGENT_KEYS.agents),
    ]);
    const facts = new Map<string, NodeFacts>();
    for (const kv of members) {
      try {
        facts.set(kv.key.slice(AGENT_KEYS.members.length), JSON.parse(kv.value) as NodeFacts);
      } catch {
        // a report this version cannot read counts as none
      }
    }
    this.facts = facts;
    this.agents = new Set(agents.map((kv) => kv.key.slice(AGENT_KEYS.agents.length)));
  }

  get(node: string): NodeFacts | null {
    return this.facts.get(node) ?? null;
  }

  agentPresent(host: string): boolean {
    return this.agents.has(host);
  }
}

/** NodeOps for nodes on other hosts: their agents' reports, and commands through the store. */
export class RemoteNodeOps implements NodeOps {
  private closed = false;

  constructor(
    private readonly store: () => StateStore,
    private readonly reports: MemberReports,
    /** The decider's session lease: its commands go when it does. */
    private readonly lease: () => LeaseId | null,
    private readonly node: (name: string) => NodeRef,
  ) {}

  facts(n: NodeRef): NodeFacts | null {
    return this.reports.get(n.name);
  }

  /** The decider is stopping: calls waiting for an answer give up at once. */
  close(): void {
    this.closed = true;
  }

  async fence(n: NodeRef): Promise<number> {
    const r = await this.call(n, { op: 'fence', node: n.name }, { goneIsDone: true });
    return typeof r === 'number' ? r : 0;
  }

  async stopNode(n: NodeRef, mode: 'fast' | 'immediate'): Promise<void> {
    await this.call(n, { op: mode === 'fast' ? 'stop_fast' : 'stop_immediate', node: n.name });
  }

  async startPrimary(n: NodeRef): Promise<void> {
    await this.call(n, { op: 'start_primary', node: n.name });
  }

  async startStandby(n: NodeRef, primary: NodeRef): Promise<void> {
    await this.call(n, { op: 'start_standby', node: n.name, primary: primary.name });
  }

  async rejoin(n: NodeRef, primary: NodeRef): Promise<'pg_rewind' | 'clone'> {
    const how = await this.call(n, { op: 'rejoin', node: n.name, primary: primary.name });
    return how === 'clone' ? 'clone' : 'pg_rewind';
  }

  async repoint(n: NodeRef, primary: NodeRef): Promise<void> {
    await this.call(n, { op: 'repoint', node: n.name, primary: primary.name });
  }

  async markForRejoin(n: NodeRef): Promise<void> {
    await this.call(n, { op: 'mark_for_rejoin', node: n.name });
  }

  async writePrimaryConf(n: NodeRef): Promise<void> {
    await this.call(n, { op: 'write_primary_conf', node: n.name });
  }

  /**
   * Asks the node's agent and waits for the outcome. When the agent is gone (its key ended)
   * before it answered: done for a fence (`goneIsDone`), an error otherwise.
   */
  private async call(n: NodeRef, cmd: Command, o: { goneIsDone?: boolean } = {}): Promise<unknown> {
    const store = this.store();
    const host = n.host;
    const id = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
    const gone = async () => (await store.get(AGENT_KEYS.agent(host))) === null;
    if (await gone()) {
      if (o.goneIsDone) return 0;
      throw new HaError(
        ErrorCodes.HA_REFUSED,
        `the agent of host ${host} is gone; cannot ${cmd.op} ${n.name}`,
      );
    }
    const lease = this.lease();
    await store.put(AGENT_KEYS.command(host, id), JSON.stringify(cmd), lease ? { lease } : {});
    const deadline = performance.now() + OP_TIMEOUT_MS[cmd.op];
    try {
      for (let i = 0; ; i++) {
        const kv = await store.get(AGENT_KEYS.result(id)).catch(() => null);
        if (kv) {
          await store.compareAndDelete(kv.key, kv.revision).catch(() => false);
          const out = JSON.parse(kv.value) as Outcome;
          if (!out.ok)
            throw new HaError(ErrorCodes.HA_REFUSED, `${cmd.op} ${n.name} on ${host}: ${out.error}`);
          return out.value;
        }
        // The agent is looked for less often than the result.
        if (i % 5 === 4 && (await gone().catch(() => false))) {
          if (o.goneIsDone) return 0;
          throw new HaError(
            ErrorCodes.HA_REFUSED,
            `the agent of host ${host} went away during ${cmd.op} ${n.name}`,
          );
        }
        if (this.closed)
          throw new HaError(ErrorCodes.TIMEOUT, `${cmd.op} ${n.name}: the decider is stopping`);
        if (performance.now() > deadline)
          throw new HaError(ErrorCodes.TIMEOUT, `${cmd.op} ${n.name}: no answer from the agent of ${host}`);
        await sleep(i < 20 ? 10 : 50);
      }
    } finally {
      const left = await store.get(AGENT_KEYS.command(host, id)).catch(() => null);
      if (left) await store.compareAndDelete(left.key, left.revision).catch(() => false);
    }
  }
}

/** NodeOps of the decider: local nodes as they are, the others through their agents. */
export class RoutedNodeOps implements NodeOps {
  constructor(
    private readonly local: NodeOps,
    private readonly remote: NodeOps,
    private readonly isLocal: (n: NodeRef) => boolean,
  ) {}

  private pick(n: NodeRef): NodeOps {
    return this.isLocal(n) ? this.local : this.remote;
  }

  facts(n: NodeRef): NodeFacts | null {
    return this.pick(n).facts(n);
  }
  fence(n: NodeRef): Promise<number> {
    return this.pick(n).fence(n);
  }
  stopNode(n: NodeRef, mode: 'fast' | 'immediate'): Promise<void> {
    return this.pick(n).stopNode(n, mode);
  }
  startPrimary(n: NodeRef): Promise<void> {
    return this.pick(n).startPrimary(n);
  }
  startStandby(n: NodeRef, primary: NodeRef): Promise<void> {
    return this.pick(n).startStandby(n, primary);
  }
  rejoin(n: NodeRef, primary: NodeRef): Promise<'pg_rewind' | 'clone'> {
    return this.pick(n).rejoin(n, primary);
  }
  repoint(n: NodeRef, primary: NodeRef): Promise<void> {
    return this.pick(n).repoint(n, primary);
  }
  markForRejoin(n: NodeRef): Promise<void> {
    return this.pick(n).markForRejoin(n);
  }
  writePrimaryConf(n: NodeRef): Promise<void> {
    return this.pick(n).writePrimaryConf(n);
  }
}

/**
 * The agent's side: runs the commands addressed to its host, one at a time per node, and writes
 * each outcome under its session lease. Polled by the agent's loop (and woken by a watch).
 */
export class CommandRunner {
  private readonly running = new Map<string, Promise<void>>();
  private readonly seen = new Set<string>();

  constructor(
    private readonly store: () => StateStore,
    private readonly host: string,
    private readonly ops: NodeOps,
    private readonly node: (name: string) => NodeRef,
    private readonly lease: () => LeaseId | null,
    private readonly log: Logger,
  ) {}

  async poll(): Promise<void> {
    const prefix = AGENT_KEYS.commands(this.host);
    const cmds = await this.store().list(prefix);
    for (const kv of cmds) {
      const id = kv.key.slice(prefix.length);
      if (this.seen.has(id)) continue;
      this.seen.add(id);
      let cmd: Command;
      try {
        cmd = JSON.parse(kv.value) as Command;
      } catch {
        continue;
      }
      const before = this.running.get(cmd.node) ?? Promise.resolve();
      const task = before.then(() => this.run(id, cmd));
      this.running.set(cmd.node, task);
    }
    if (this.seen.size > 1000) this.seen.clear();
  }

  async idle(): Promise<void> {
    await Promise.all(this.running.values());
  }

  private async run(id: string, cmd: Command): Promise<void> {
    let out: Outcome;
    try {
      const n = this.node(cmd.node);
      if (n.host !== this.host) throw new Error(`${cmd.node} is not on host ${this.host}`);
      const primary = cmd.primary ? this.node(cmd.primary) : null;
      const need = () => {
        if (!primary) throw new Error(`${cmd.op} needs a primary`);
        return primary;
      };
      this.log.info({ node: cmd.node, op: cmd.op }, `agent: ${cmd.op} ${cmd.node} (asked by the decider)`);
      let value: unknown = null;
      switch (cmd.op) {
        case 'fence':
          value = await this.ops.fence(n);
          break;
        case 'stop_fast':
        case 'stop_immediate':
          await this.ops.stopNode(n, cmd.op === 'stop_fast' ? 'fast' : 'immediate');
          break;
        case 'start_primary':
          await this.ops.startPrimary(n);
          break;
        case 'start_standby':
          await this.ops.startStandby(n, need());
          break;
        case 'rejoin':
          value = await this.ops.rejoin(n, need());
          break;
        case 'repoint':
          await this.ops.repoint(n, need());
          break;
        case 'mark_for_rejoin':
          await this.ops.markForRejoin(n);
          break;
        case 'write_primary_conf':
          await this.ops.writePrimaryConf(n);
          break;
      }
      out = { ok: true, value };
    } catch (e) {
      out = { ok: false, error: errorMessage(e) };
      this.log.warn({ node: cmd.node, op: cmd.op }, `agent: ${cmd.op} ${cmd.node} failed: ${out.error}`);
    }
    const lease = this.lease();
    await this.store()
      .put(AGENT_KEYS.result(id), JSON.stringify(out), lease ? { lease } : {})
      .catch((e: unknown) =>
        this.log.warn(`agent: the outcome of ${cmd.op} ${cmd.node} was not written: ${errorMessage(e)}`),
      );
    const left = await this.store()
      .get(AGENT_KEYS.command(this.host, id))
      .catch(() => null);
    if (left)
      await this.store()
        .compareAndDelete(left.key, left.revision)
        .catch(() => false);
  }
}
