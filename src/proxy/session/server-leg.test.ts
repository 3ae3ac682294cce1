import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TypedMessage } from '../../protocol/framer.js';
import type { TypedFrame } from '../../protocol/framer.js';
import { buildErrorResponse } from '../../protocol/error-response.js';
import type { Severity } from '../../protocol/error-response.js';
import type { Pool } from '../backend/pool.js';
import type { ServerConn } from '../backend/server-conn.js';
import { commandComplete, readyForQuery } from '../rewrite.js';
import type { PendingQuery, SqlOp } from './pending.js';
import { ownQuery } from './pending.js';
import type { LegEvents } from './server-leg.js';
import { ServerLeg } from './server-leg.js';
import { ExplainRewrite } from './explain-note.js';
import type { ReplicaTarget } from '../read-router.js';

/** A backend message as it arrives: type, length, payload. */
function frame(type: string, payload: Buffer = Buffer.alloc(0)): TypedFrame {
  const bytes = Buffer.alloc(5 + payload.length);
  bytes.write(type, 0, 'latin1');
  bytes.writeInt32BE(4 + payload.length, 1);
  payload.copy(bytes, 5);
  return TypedMessage.of(bytes);
}
const fromBytes = (bytes: Buffer): TypedFrame => frame(String.fromCharCode(bytes[0]!), bytes.subarray(5));
const dataRow = (text: string): TypedFrame => {
  const v = Buffer.from(text);
  const p = Buffer.alloc(6 + v.length);
  p.writeUInt16BE(1, 0);
  p.writeInt32BE(v.length, 2);
  v.copy(p, 6);
  return frame('D', p);
};
const C = (tag: string) => fromBytes(commandComplete(tag));
const Z = (s: 'I' | 'T' | 'E' = 'I') => fromBytes(readyForQuery(s));
const E = (code: string, message = 'boom', severity: Severity = 'ERROR') =>
  fromBytes(buildErrorResponse(severity, code, message));

class Recorder implements LegEvents {
  readonly log: string[] = [];
  readonly sink: Buffer[] = [];
  /** Where the sink was marked, until the batch is "written" (framesDone). */
  markAt: number | null = null;
  goingAway = false;
  readonly failed: { ops: readonly SqlOp[]; at: number }[] = [];
  readonly rfq: (PendingQuery | null)[] = [];
  lsn: bigint | null = null;
  unsafeEncoding(): void {
    this.log.push('unsafe');
  }
  serverGoingAway(leg: ServerLeg): boolean {
    this.log.push('going-away');
    if (!this.goingAway || !leg.unanswered) return false;
    leg.retract(); // as the session does before it replays elsewhere
    return true;
  }
  commandComplete(_l: ServerLeg, f: TypedFrame): void {
    this.log.push(`C:${f.payload.toString('latin1', 0, f.payload.length - 1)}`);
  }
  readyForQuery(_l: ServerLeg, _f: TypedFrame, q: PendingQuery | null): void {
    this.log.push('Z');
    this.rfq.push(q);
  }
  commitPosition(_leg: ServerLeg, lsn: bigint): void {
    this.lsn = lsn;
  }
  sqlStatementsFailed(_l: ServerLeg, ops: readonly SqlOp[], at: number): void {
    this.failed.push({ ops, at });
  }
  framesDone(): void {
    this.log.push('done');
    this.markAt = null; // the session writes the batch here
  }
  serverLost(): void {
    this.log.push('lost');
  }
  /** Message types the client received. */
  get types(): string {
    return this.sink.map((b) => String.fromCharCode(b[0]!)).join('');
  }
}

function legWith(replica = false) {
  const ev = new Recorder();
  const remembered: string[] = [];
  const stats = { bytesReceived: 0, bytesSent: 0 };
  const home = { stats, rememberStatement: (n: string) => remembered.push(n) } as unknown as Pool;
  const server = { prepared: new Map<string, true>(), socket: null } as unknown as ServerConn;
  const leg = new ServerLeg(
    ev,
    {
      add: (b) => ev.sink.push(b),
      addFrame: (f) => ev.sink.push(f.bytes),
      mark: () => (ev.markAt = ev.sink.length),
      get canRollback() {
        return ev.markAt !== null;
      },
      rollback: () => {
        if (ev.markAt === null) return false;
        ev.sink.length = ev.markAt;
        ev.markAt = null;
        return true;
      },
    },
    home,
    null,
  );
  leg.bind(server, home, replica ? ({} as ReplicaTarget) : null, 0);
  return { ev, leg, server, remembered, stats };
}

describe('ServerLeg: replies matched to requests', () => {
  test("a Query's rows and its ReadyForQuery reach the sink; the session hears of each CommandComplete and of ReadyForQuery", () => {
    const { ev, leg, stats } = legWith();
    leg.expect({ k: 'query', swallow: false, failed: false, wasInBlock: false });
    leg.onFrames([frame('T', Buffer.from([0, 0])), dataRow('1'), C('SELECT 1'), Z()]);
    assert.equal(ev.types, 'TDCZ');
    assert.deepEqual(ev.log, ['C:SELECT 1', 'Z', 'done']);
    assert.equal(leg.idle, true);
    assert.ok(stats.bytesSent > 0);
  });

  test("the proxy's own Query is swallowed whole, and its ReadyForQuery still reported", () => {
    const { ev, leg } = legWith();
    leg.expect(ownQuery());
    leg.onFrames([C('SET'), Z()]);
    assert.equal(ev.types, '');
    assert.deepEqual(ev.log, ['Z', 'done']);
    assert.equal(ev.rfq[0]?.swallow, true);
  });

  test('an error in an extended-protocol batch skips everything up to its Sync, as the server does', () => {
    const { ev, leg } = legWith();
    leg.expect({ k: 'parse', swallow: false, serverName: null });
    leg.expect({ k: 'bind' });
    leg.expect({ k: 'execute' });
    leg.expect({ k: 'sync' });
    leg.onFrames([fromBytes(Buffer.from('1\0\0\0\x04', 'latin1')), E('22P02'), Z()]);
    assert.equal(ev.types, '1EZ');
    assert.deepEqual(ev.log, ['Z', 'done']);
    assert.equal(ev.rfq[0], null);
    assert.equal(leg.idle, true);
  });

  test('a failed Parse forgets the statement on the connection; a good one is remembered by the pool', () => {
    const { leg, server, remembered } = legWith();
    server.prepared.set('pgscale_p_a', true);
    server.prepared.set('pgscale_p_b', true);
    leg.expect({ k: 'parse', swallow: true, serverName: 'pgscale_p_a' });
    leg.expect({ k: 'parse', swallow: true, serverName: 'pgscale_p_b' });
    leg.expect({ k: 'sync' });
    leg.onFrames([fromBytes(Buffer.from('1\0\0\0\x04', 'latin1')), E('42601'), Z()]);
    assert.deepEqual(remembered, ['pgscale_p_a']);
    assert.deepEqual([...server.prepared.keys()], ['pgscale_p_a']);
  });

  test('synthetic replies come out exactly where the server would have sent them', () => {
    const { ev, leg } = legWith();
    leg.expect({ k: 'bind' });
    leg.synthetic(Buffer.from('3\0\0\0\x04', 'latin1')); // CloseComplete, after the Bind's reply
    leg.expect({ k: 'sync' });
    assert.equal(ev.types, '');
    leg.onFrames([fromBytes(Buffer.from('2\0\0\0\x04', 'latin1')), Z()]);
    assert.equal(ev.types, '23Z');
  });

  test('a renamed Query that fails reports how many statements ran, so their record changes stay', () => {
    const { ev, leg } = legWith();
    const ops: SqlOp[] = [];
    leg.expect({
      k: 'query',
      swallow: false,
      failed: false,
      wasInBlock: false,
      renamed: { names: new Map([['pgscale_s_x', 'mine']]), spans: [], ops },
      completed: 0,
    });
    leg.onFrames([C('PREPARE'), E('42P05', 'prepared statement "pgscale_s_x" already exists'), Z()]);
    assert.deepEqual(ev.failed, [{ ops, at: 1 }]);
    const err = ev.sink[1]!.toString('latin1');
    assert.match(err, /"mine" already exists/);
    assert.doesNotMatch(err, /pgscale_s_x/);
    assert.equal(ev.rfq[0]?.failed, true);
  });

  test('COPY IN from Execute: Syncs sent during the copy are not waited for', () => {
    const { ev, leg } = legWith();
    leg.expect({ k: 'bind' });
    leg.expect({ k: 'execute' });
    leg.expect({ k: 'sync' }); // sent by the client during COPY: PostgreSQL ignores it
    leg.expect({ k: 'copy-end' });
    leg.expect({ k: 'sync' });
    leg.onFrames([fromBytes(Buffer.from('2\0\0\0\x04', 'latin1')), frame('G', Buffer.from([0, 0, 0]))]);
    assert.equal(leg.copyIn, true);
    leg.onFrames([C('COPY 3'), Z()]);
    assert.equal(leg.copyIn, false);
    assert.equal(ev.types, '2GCZ');
    assert.equal(leg.idle, true);
  });

  test("the commit position of the proxy's own capture is reported, never shown", () => {
    const { ev, leg } = legWith();
    leg.expect({ ...ownQuery(), captureLsn: true, lsn: null });
    leg.onFrames([frame('T', Buffer.from([0, 0])), dataRow('0/3000148'), C('SELECT 1'), Z()]);
    assert.equal(ev.lsn, 0x3000148n);
    assert.equal(ev.types, '');
  });

  test('unsolicited messages (a FATAL before the server goes) reach the client', () => {
    const { ev, leg } = legWith();
    leg.onFrames([E('57P01', 'terminating connection', 'FATAL')]);
    assert.equal(ev.types, 'E');
  });
});

describe('ServerLeg: a replica going away before any reply', () => {
  test('is reported for a replay only while the client has had no reply', () => {
    const r1 = legWith(true);
    r1.leg.expect({ k: 'query', swallow: false, failed: false, wasInBlock: false });
    r1.ev.goingAway = true;
    r1.leg.onFrames([E('57P01', 'terminating connection', 'FATAL')]);
    assert.deepEqual(r1.ev.log, ['going-away']);
    assert.equal(r1.ev.types, '');

    const r2 = legWith(true);
    r2.leg.expect({ k: 'query', swallow: false, failed: false, wasInBlock: false });
    r2.leg.onFrames([frame('T', Buffer.from([0, 0]))]);
    assert.equal(r2.leg.replied, true);
    r2.leg.onFrames([E('57P01', 'terminating connection', 'FATAL')]);
    assert.ok(!r2.ev.log.includes('going-away'));
    assert.equal(r2.ev.types, 'TE');
  });

  test('replies still unwritten are taken back when they only describe rows (RowDescription and its FATAL come in one write)', () => {
    const simple = legWith(true);
    simple.ev.sink.push(Buffer.from('N-before')); // queued before the attachment: kept
    simple.leg.expect({ k: 'query', swallow: false, failed: false, wasInBlock: false });
    simple.ev.goingAway = true;
    simple.leg.onFrames([frame('T', Buffer.from([0, 0])), dataRow('1'), E('57P01', 'terminating', 'FATAL')]);
    assert.deepEqual(simple.ev.log, ['going-away']);
    assert.equal(simple.ev.types, 'N');
    assert.equal(simple.leg.replied, false);

    const extended = legWith(true);
    extended.leg.expect({ k: 'parse', swallow: false, serverName: null });
    extended.leg.expect({ k: 'bind' });
    extended.leg.expect({ k: 'describe', statement: false, sawDescription: false });
    extended.leg.expect({ k: 'execute' });
    extended.leg.expect({ k: 'sync' });
    extended.ev.goingAway = true;
    extended.leg.onFrames([
      fromBytes(Buffer.from('1\0\0\0\x04', 'latin1')),
      fromBytes(Buffer.from('2\0\0\0\x04', 'latin1')),
      frame('T', Buffer.from([0, 0])),
      E('57P01', 'terminating', 'FATAL'),
    ]);
    assert.deepEqual(extended.ev.log, ['going-away']);
    assert.equal(extended.ev.types, '');
  });

  test('replies that reached the client or completed a command are never taken back', () => {
    const completed = legWith(true);
    completed.leg.expect({ k: 'query', swallow: false, failed: false, wasInBlock: false });
    completed.ev.goingAway = true;
    completed.leg.onFrames([
      frame('T', Buffer.from([0, 0])),
      C('SELECT 0'),
      E('57P01', 'terminating', 'FATAL'),
    ]);
    assert.ok(!completed.ev.log.includes('going-away'));
    assert.equal(completed.ev.types, 'TCE');

    const refused = legWith(true); // the session cannot replay (say, inside a transaction)
    refused.leg.expect({ k: 'query', swallow: false, failed: false, wasInBlock: false });
    refused.leg.onFrames([frame('T', Buffer.from([0, 0])), E('57P01', 'terminating', 'FATAL')]);
    assert.deepEqual(refused.ev.log, ['going-away', 'done']);
    assert.equal(refused.ev.types, 'TE');
  });

  test('a primary leg never offers a replay', () => {
    const { ev, leg } = legWith(false);
    leg.expect({ k: 'query', swallow: false, failed: false, wasInBlock: false });
    leg.onFrames([E('57P01', 'terminating connection', 'FATAL')]);
    assert.ok(!ev.log.includes('going-away'));
  });
});

describe('ServerLeg: one attachment at a time', () => {
  test('replies after the leg was released at a ReadyForQuery are not matched to the next attachment', () => {
    const { ev, leg } = legWith();
    leg.expect({ k: 'query', swallow: false, failed: false, wasInBlock: false });
    const orig = ev.readyForQuery.bind(ev);
    ev.readyForQuery = (l, f, q) => {
      orig(l, f, q);
      leg.unbind();
    };
    leg.onFrames([C('SELECT 1'), Z(), C('STRAY')]);
    assert.deepEqual(ev.log, ['C:SELECT 1', 'Z', 'done']);
  });
});

describe('ServerLeg: an EXPLAIN’s route (explain-note.ts)', () => {
  const note = {
    format: 'text' as const,
    facts: { kind: 'one' as const, group: '1', shards: [{ id: 102011, name: 'users_102011' }], reason: null },
  };
  const rowText = (b: Buffer) => b.toString('utf8', 11);

  test('the armed rewrite takes the next Execute: rows of the statements before it are untouched', () => {
    const { ev, leg } = legWith();
    leg.expect({ k: 'query', swallow: false, failed: false, wasInBlock: false });
    leg.explainArmed = new ExplainRewrite(note, { group: '1', server: 'primary' });
    leg.expect({ k: 'parse', swallow: false, serverName: null });
    leg.expect({ k: 'bind' });
    leg.expect({ k: 'execute' });
    leg.expect({ k: 'sync' });
    assert.equal(leg.explainArmed, null);
    leg.onFrames([dataRow('1'), C('SELECT 1'), Z()]);
    leg.onFrames([
      fromBytes(Buffer.from('1\0\0\0\x04', 'latin1')),
      fromBytes(Buffer.from('2\0\0\0\x04', 'latin1')),
    ]);
    leg.onFrames([dataRow('Seq Scan on users_102011 users'), dataRow('  Filter: x'), C('EXPLAIN'), Z()]);
    assert.equal(ev.types, 'DCZ12DDDDDCZ');
    const rows = ev.sink.filter((b) => b[0] === 0x44).map(rowText);
    assert.deepEqual(rows, [
      '1',
      'Custom Scan (pgscale router)',
      '  Group: 1  Shard: 102011 (users_102011)',
      '  ->  Plan on group 1 (primary)',
      '        Seq Scan on users_102011 users',
      '          Filter: x',
    ]);
  });

  test('armed but no Execute before the Sync: disarmed, later rows untouched', () => {
    const { ev, leg } = legWith();
    leg.explainArmed = new ExplainRewrite(note, { group: '1', server: 'primary' });
    leg.expect({ k: 'bind' });
    leg.expect({ k: 'sync' });
    assert.equal(leg.explainArmed, null);
    leg.expect({ k: 'execute' });
    leg.expect({ k: 'sync' });
    leg.onFrames([fromBytes(Buffer.from('2\0\0\0\x04', 'latin1')), Z(), dataRow('x'), C('SELECT 1'), Z()]);
    assert.deepEqual(ev.sink.filter((b) => b[0] === 0x44).map(rowText), ['x']);
  });
});
