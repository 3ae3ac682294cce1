/**
 * The proxy's JavaScript hot path alone: client sessions, one pool and the framers of both sides,
 * driven with fake sockets (no kernel, no Node.js stream machinery, no PostgreSQL), so that a
 * change to the per-message code can be compared in CPU µs per transaction without the noise of a
 * shared host, which `bench:proxy` cannot escape. Clients send pgbench's select-only transaction
 * (`-M simple`: a Query; `-M extended`: Parse/Bind/Describe/Execute/Sync) and get a one-row reply;
 * with more clients than server connections most transactions queue for a connection, as in the
 * benchmark. It measures compiled code: `--dist DIR` (default `dist/`, built by `npm run build`),
 * so two builds (say, before and after a change) can be compared in alternation.
 */
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { repoRoot } from '../test/harness.js';

import type { Socket } from 'node:net';
import type * as SessionModule from '../src/proxy/session.js';
import type * as PoolModule from '../src/proxy/backend/pool.js';
import type * as ServerConnModule from '../src/proxy/backend/server-conn.js';
import type * as FramerModule from '../src/protocol/framer.js';
import type * as BackendModule from '../src/protocol/backend-messages.js';
import type * as FrontendModule from '../src/protocol/frontend-messages.js';
import type { Session } from '../src/proxy/session.js';
import type { ServerConn } from '../src/proxy/backend/server-conn.js';
import type { Framer, TypedFrame } from '../src/protocol/framer.js';
import type { ListenerHub } from '../src/proxy/listener-hub.js';
import type { ClientId } from '../src/proxy/types.js';

const USAGE = `Usage: node --import tsx bench/hot-path.ts [options]

  --dist DIR        compiled pgscale to measure (default dist/; npm run build first)
  --mode M          simple, extended or prepared (default simple)
  --clients N       client sessions (default 50)
  --pool-size N     server connections (default 20)
  --transactions N  measured transactions (default 200000, after 20000 of warm-up)
  -h, --help        this text

Prints one JSON line: CPU µs (user + system) per transaction.
`;

interface Options {
  dist: string;
  mode: 'simple' | 'extended' | 'prepared';
  clients: number;
  poolSize: number;
  transactions: number;
}

function parseOptions(argv: string[]): Options | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      dist: { type: 'string' },
      mode: { type: 'string' },
      clients: { type: 'string' },
      'pool-size': { type: 'string' },
      transactions: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) return null;
  const mode = values.mode ?? 'simple';
  if (mode !== 'simple' && mode !== 'extended' && mode !== 'prepared')
    throw new Error(`--mode: simple, extended or prepared, got "${mode}"`);
  const int = (v: string | undefined, def: number) => (v === undefined ? def : Number.parseInt(v, 10));
  return {
    dist: resolve(values.dist ?? join(repoRoot, 'dist')),
    mode,
    clients: int(values.clients, 50),
    poolSize: int(values['pool-size'], 20),
    transactions: int(values.transactions, 200_000),
  };
}

/** What Session, ServerConn and the pool call on a socket; writes go to `onWrite`. */
class FakeSocket {
  destroyed = false;
  writable = true;
  constructor(private readonly onWrite: (b: Buffer) => void) {}
  write(b: Buffer): boolean {
    this.onWrite(b);
    return true;
  }
  cork(): void {}
  uncork(): void {}
  pause(): void {}
  resume(): void {}
  once(): void {}
  on(): void {}
}

async function main(o: Options): Promise<void> {
  const load = async <T>(file: string): Promise<T> =>
    (await import(pathToFileURL(join(o.dist, file)).href)) as T;
  const { Session } = await load<typeof SessionModule>('proxy/session.js');
  const { Pool } = await load<typeof PoolModule>('proxy/backend/pool.js');
  const { ServerConn } = await load<typeof ServerConnModule>('proxy/backend/server-conn.js');
  const { Framer } = await load<typeof FramerModule>('protocol/framer.js');
  const { encodeBackendMessage } = await load<typeof BackendModule>('protocol/backend-messages.js');
  const { encodeFrontendMessage } = await load<typeof FrontendModule>('protocol/frontend-messages.js');

  const target = { host: '127.0.0.1', port: 5432, user: 'app', database: 'app' };
  const pool = new Pool(
    'app',
    target,
    { kind: 'none' },
    {
      size: o.poolSize,
      minSize: 0,
      mode: 'transaction',
      queryWaitTimeoutMs: 120_000,
      serverIdleTimeoutMs: 600_000,
      serverLifetimeMs: 3_600_000,
      serverCheckDelayMs: 30_000,
      connectTimeoutMs: 15_000,
      tls: { mode: 'disable', caFile: null },
      maxPreparedStatements: 100,
      nodeConcurrency: 0,
    },
  );

  const rows = [
    encodeBackendMessage({
      name: 'RowDescription',
      fields: [
        {
          name: 'abalance',
          tableOid: 1,
          columnAttr: 2,
          typeOid: 23,
          typeSize: 4,
          typeModifier: -1,
          format: 0,
        },
      ],
    }),
    encodeBackendMessage({ name: 'DataRow', values: [Buffer.from('-1234')] }),
    encodeBackendMessage({ name: 'CommandComplete', tag: 'SELECT 1' }),
    encodeBackendMessage({ name: 'ReadyForQuery', status: 'I' }),
  ];
  // The fake server answers what it was sent, message by message, as PostgreSQL would.
  const answers: Record<string, Buffer> = {
    P: encodeBackendMessage({ name: 'ParseComplete' }),
    B: encodeBackendMessage({ name: 'BindComplete' }),
    D: rows[0]!,
    E: Buffer.concat([rows[1]!, rows[2]!]),
    S: rows[3]!,
    Q: Buffer.concat(rows),
  };
  const answer = (sent: Buffer[]): Buffer => {
    const out: Buffer[] = [];
    for (const b of sent) {
      for (let at = 0; at + 5 <= b.length; at += 1 + b.readUInt32BE(at + 1)) {
        const a = answers[String.fromCharCode(b[at]!)];
        if (a) out.push(a);
      }
    }
    return Buffer.concat(out); // a fresh chunk, as a socket read gives
  };
  const request = (aid: number, first: boolean): Buffer => {
    if (o.mode === 'simple') {
      return encodeFrontendMessage({
        name: 'Query',
        query: `SELECT abalance FROM pgbench_accounts WHERE aid = ${aid};`,
      });
    }
    // pgbench -M prepared: Parse of a named statement once per connection, then Bind/Execute.
    const statement = o.mode === 'prepared' ? 'P_1' : '';
    return Buffer.concat([
      ...(o.mode === 'extended' || first
        ? [
            encodeFrontendMessage({
              name: 'Parse',
              statement,
              query: 'SELECT abalance FROM pgbench_accounts WHERE aid = $1;',
              paramTypes: [],
            }),
          ]
        : []),
      encodeFrontendMessage({
        name: 'Bind',
        portal: '',
        statement,
        paramFormats: [],
        params: [Buffer.from(String(aid))],
        resultFormats: [],
      }),
      encodeFrontendMessage({ name: 'Describe', target: 'portal', targetName: '' }),
      encodeFrontendMessage({ name: 'Execute', portal: '', maxRows: 0 }),
      encodeFrontendMessage({ name: 'Sync' }),
    ]);
  };

  // Server connections whose writes mark them as owing a reply. The constructor and onData are
  // private: the benchmark plays the socket's part, so it reaches past TypeScript's visibility.
  const owing: ServerConn[] = [];
  const sentTo = new Map<ServerConn, Buffer[]>();
  type ServerConnInternals = { new (socket: FakeSocket, t: typeof target): ServerConn };
  type Readable = { onData(chunk: Buffer): void };
  for (let i = 0; i < o.poolSize; i++) {
    const conn: ServerConn = new (ServerConn as unknown as ServerConnInternals)(
      new FakeSocket((b) => {
        const sent = sentTo.get(conn);
        if (sent) sent.push(b);
        else {
          sentTo.set(conn, [b]);
          owing.push(conn);
        }
      }),
      target,
    );
    pool.idle.push(conn);
    // A connection the pool opened carries its generation (retarget() bumps it); these did not come
    // through connectOne, so they are given the current one, else release() would drop them.
    // (Builds before the generation became a field of the connection kept it in a WeakMap.)
    (conn as unknown as { poolGeneration: number }).poolGeneration = 0;
    (pool as unknown as { generations?: WeakMap<ServerConn, number> }).generations?.set(conn, 0);
  }

  let completed = 0;
  /** Clients whose reply arrived, in order (a scan of every client per reply would cost the benchmark O(clients)). */
  const repliedQueue: Client[] = [];
  interface Client {
    framer: Framer;
    session: Session;
    replied: boolean;
    prepared: boolean;
  }
  const clients: Client[] = [];
  for (let i = 0; i < o.clients; i++) {
    const framer = Framer.frontend();
    framer.push(Buffer.from([0, 0, 0, 8, 0, 3, 0, 0])); // a StartupMessage: typed messages follow
    const c: Client = {
      framer,
      replied: false,
      prepared: false,
      session: undefined as unknown as Client['session'],
    };
    // A reply ends with ReadyForQuery (6 bytes); the client then sends its next transaction.
    const socket = new FakeSocket((b) => {
      if (b[b.length - 6] === 0x5a) {
        completed++;
        c.replied = true;
        repliedQueue.push(c);
      }
    });
    c.session = new Session(
      {
        id: (i + 1) as ClientId,
        socket: socket as unknown as Socket,
        terminate: () => {
          throw new Error('a session was terminated');
        },
        pauseReading: () => undefined,
        resumeReading: () => undefined,
        inputFlushed: () => undefined,
      },
      {
        pool,
        mode: 'transaction',
        maxPreparedStatements: 100,
        // In transaction mode the proxy always has a LISTEN fan-out; no message here uses it.
        listeners: {} as ListenerHub,
        startupSettings: new Map([['client_encoding', "'UTF8'"]]),
      },
    );
    clients.push(c);
  }

  // Requests are encoded before the measurement, so that it counts the proxy's work, not the
  // benchmark's: a copy of one of them stands for what a socket read gives.
  const aid = () => 1 + Math.floor(Math.random() * 1_000_000);
  const requests = Array.from({ length: 4096 }, () => request(aid(), false));
  let next = 0;
  const send = (c: Client) => {
    c.replied = false;
    const first = !c.prepared;
    c.prepared = true;
    const r = c.framer.push(first ? request(aid(), true) : Buffer.from(requests[next++ & 4095]!));
    c.session.onClientFrames(r.frames as TypedFrame[]);
  };
  const reply = (s: ServerConn) => {
    const sent = sentTo.get(s)!;
    sentTo.delete(s);
    (s as unknown as Readable).onData(answer(sent));
  };
  const run = (n: number) => {
    const until = completed + n;
    repliedQueue.length = 0;
    for (const c of clients) send(c);
    while (completed < until) {
      const s = owing.shift();
      if (!s) throw new Error('no server owes a reply: the sessions are stuck');
      reply(s);
      while (repliedQueue.length > 0 && completed < until) send(repliedQueue.shift()!);
    }
    while (owing.length > 0) reply(owing.shift()!);
  };

  run(20_000);
  const cpu0 = process.cpuUsage();
  run(o.transactions);
  const cpu = process.cpuUsage(cpu0);
  process.stdout.write(
    JSON.stringify({
      dist: o.dist,
      mode: o.mode,
      clients: o.clients,
      poolSize: o.poolSize,
      transactions: o.transactions,
      cpuUsPerTx: Number(((cpu.user + cpu.system) / o.transactions).toFixed(3)),
    }) + '\n',
  );
}

let options: Options | null;
try {
  options = parseOptions(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n\n${USAGE}`);
  process.exit(2);
}
if (options === null) process.stdout.write(USAGE);
else await main(options);
