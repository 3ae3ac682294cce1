// A minimal Node.js transaction pooler: the floor a pooler written for Node.js can reach on the
// machine at hand, measured beside PgBouncer, node-pipe and pgscale by bench:proxy's `min-pooler`
// target (issue #14). It frames messages by type and length in both directions and parses no SQL.
//  - Clients are greeted by the pooler itself: SSLRequest/GSSENCRequest get 'N'; the
//    StartupMessage (user must be USER) gets a SCRAM-SHA-256 exchange against PGPASSWORD (its
//    verifier derived once at start: a login costs a few HMACs), then AuthenticationOk, the
//    ParameterStatus values of the first server connection, a BackendKeyData and ReadyForQuery
//    'I'. Other startup parameters are ignored. CancelRequest is ignored (connection closed).
//  - POOL_SIZE server connections are opened at start (SCRAM-SHA-256, md5 or cleartext, as the
//    server asks) as USER to DATABASE; the password comes from PGPASSWORD (never argv).
//  - A client takes a server connection at its first message of a transaction and gives it back
//    when the server's ReadyForQuery says 'I' and every Sync/Query the client sent is answered;
//    clients with no free connection wait in FIFO order. All complete messages of one read are
//    forwarded in one write, both ways.
//  - Named prepared statements (pgbench -M prepared) work across server connections the way
//    PgBouncer ≥ 1.21 does it: a named Parse is renamed to a pool-wide name per statement text,
//    prepared on a server connection only where it is not yet; a Bind/Describe of it on a
//    connection that lacks it is preceded by its Parse (whose ParseComplete is dropped). A Parse
//    the connection already has becomes an empty unnamed Parse (so that the client still gets its
//    ParseComplete, in order; it replaces the unnamed statement), a Close of a named statement a
//    Close of the unnamed one. A Parse+Sync of a known statement from a client holding no
//    connection is answered at once (what keeps pgbench's synchronous PQprepare from waiting for
//    a connection held by a client of the same pgbench thread). Not handled: SQL-level PREPARE,
//    redefining a name without closing it, a failing Parse (its name is still recorded).
//  - Terminate or a lost client while it holds a connection: what it sent is allowed to finish;
//    then the connection goes back to the pool, after a ROLLBACK if it is in a transaction.
//    A lost server connection closes its client's connection and is replaced after a second.
//  - Sharded (bench:shard-cpu's floor, issue #15): with MIN_POOLER_SHARDS set to
//    {"ports": [one server port per group], "key", "shardCount", "placement"}, POOL_SIZE server
//    connections are opened to each port (SERVER_PORT is then unused): one pool per group, and a
//    client's transaction takes its connection from the pool of the group bench/min-shard-route.mjs
//    chooses by the key of its first message. Named statements stay pool-wide (any group).
// Usage: PGPASSWORD=… node bench/min-pooler.mjs LISTEN_PORT SERVER_HOST SERVER_PORT POOL_SIZE [USER [DATABASE]]
//        (USER defaults to PGUSER, DATABASE to PGDATABASE, then to USER.)
import crypto from 'node:crypto';
import net from 'node:net';

const [listenPort, serverHost, serverPort, poolArg, userArg, dbArg] = process.argv.slice(2);
const POOL_SIZE = Number(poolArg ?? 20);
const USER = userArg ?? process.env.PGUSER ?? 'postgres';
const DATABASE = dbArg ?? process.env.PGDATABASE ?? USER;
const PASSWORD = process.env.PGPASSWORD ?? '';
if (!listenPort || !serverHost || !serverPort || !(POOL_SIZE >= 1)) {
  process.stderr.write(
    'usage: node bench/min-pooler.mjs LISTEN_PORT SERVER_HOST SERVER_PORT POOL_SIZE [USER [DATABASE]]\n',
  );
  process.exit(2);
}

const SHARDS = process.env.MIN_POOLER_SHARDS ? JSON.parse(process.env.MIN_POOLER_SHARDS) : null;
const router = SHARDS === null ? null : (await import('./min-shard-route.mjs')).shardRouter(SHARDS);

// --- messages ---------------------------------------------------------------------------------
const T_Z = 90; // ReadyForQuery
const T_PARSE_COMPLETE = 49; // '1'
const I = 73; // 'I': idle, not in a transaction

/** One backend message: type byte, length, body. */
function message(type, body) {
  const b = Buffer.allocUnsafe(5 + body.length);
  b[0] = type.charCodeAt(0);
  b.writeInt32BE(4 + body.length, 1);
  body.copy(b, 5);
  return b;
}
const cstr = (s) => Buffer.from(`${s}\0`, 'utf8');
const int32 = (n) => {
  const b = Buffer.allocUnsafe(4);
  b.writeInt32BE(n);
  return b;
};
/** The 'M' (message) field of an ErrorResponse body. */
function errorText(body) {
  for (let i = 0; i < body.length && body[i] !== 0;) {
    const end = body.indexOf(0, i + 1);
    if (body[i] === 77) return body.toString('utf8', i + 1, end);
    i = end + 1;
  }
  return 'unknown error';
}
function errorResponse(code, text) {
  return message('E', Buffer.concat([cstr('SFATAL'), cstr(`C${code}`), cstr(`M${text}`), Buffer.from([0])]));
}
const READY_IDLE = message('Z', Buffer.from('I'));
const AUTH_OK = message('R', int32(0));
const PARSE_COMPLETE = message('1', Buffer.alloc(0));
/** Parse of the unnamed statement with an empty query: costs nothing, answers ParseComplete. */
const EMPTY_PARSE = message('P', Buffer.from([0, 0, 0, 0]));
/** Close of the unnamed statement: answers CloseComplete whether or not it exists. */
const CLOSE_UNNAMED = message('C', Buffer.from([83, 0]));
const ROLLBACK = message('Q', cstr('ROLLBACK'));

// --- server connections -----------------------------------------------------------------------
/** @type {Buffer|null} ParameterStatus messages of the first server connection. */
let parameterStatus = null;
// One pool per group (one in all when not sharded). idle: a stack (the connection used last is
// warmest); waiting: clients waiting for a connection, FIFO from waitHead.
const pools = (SHARDS === null ? [Number(serverPort)] : SHARDS.ports).map((port) => ({
  port,
  idle: [],
  waiting: [],
  waitHead: 0,
}));
let live = 0;
let stopping = false;
const saltedCache = new Map();

function hmac(key, text) {
  return crypto.createHmac('sha256', key).update(text).digest();
}

/** Opens one server connection and authenticates it; calls `ready(s)` at its first ReadyForQuery. */
function openServer(pool, ready) {
  const s = {
    pool,
    sock: net.connect({ host: serverHost, port: pool.port }),
    buf: null,
    client: null,
    ready: false,
    pending: 0, // Sync/Query/FunctionCall sent and not yet answered by ReadyForQuery
    status: I,
    dropParse: 0, // ParseCompletes of injected Parses still to drop (reset when all is answered)
    prepared: new Set(), // pool-wide statement names prepared on this connection
    params: [],
    scram: null,
  };
  s.sock.setNoDelay(true);
  s.sock.on('connect', () => {
    const body = Buffer.concat([
      int32(196608),
      cstr('user'),
      cstr(USER),
      cstr('database'),
      cstr(DATABASE),
      Buffer.from([0]),
    ]);
    s.sock.write(Buffer.concat([int32(body.length + 4), body]));
  });
  s.sock.on('data', (chunk) => (s.ready ? serverData(s, chunk) : serverStartup(s, chunk, ready)));
  s.sock.on('error', (e) => {
    if (!s.ready) process.stderr.write(`min-pooler: server connection: ${e.message}\n`);
  });
  s.sock.on('close', () => serverLost(s));
}

function serverStartup(s, chunk, ready) {
  let buf = s.buf ? Buffer.concat([s.buf, chunk]) : chunk;
  s.buf = null;
  let off = 0;
  while (off + 5 <= buf.length) {
    const next = off + 1 + buf.readInt32BE(off + 1);
    if (next > buf.length) break;
    const t = String.fromCharCode(buf[off]);
    const body = buf.subarray(off + 5, next);
    off = next;
    if (t === 'R') {
      try {
        authStep(s, body);
      } catch (e) {
        process.stderr.write(`min-pooler: ${e.message}\n`);
        s.sock.destroy();
        return;
      }
    } else if (t === 'S') s.params.push(message('S', body));
    else if (t === 'E') {
      process.stderr.write(`min-pooler: server refused the connection: ${errorText(body)}\n`);
      s.sock.destroy();
      return;
    } else if (t === 'Z') {
      s.ready = true;
      s.status = body[0];
      if (parameterStatus === null) parameterStatus = Buffer.concat(s.params);
      s.params = null;
      if (off < buf.length) s.buf = buf.subarray(off);
      ready(s);
      return;
    }
    // BackendKeyData, NoticeResponse, NegotiateProtocolVersion: not needed
  }
  if (off < buf.length) s.buf = buf.subarray(off);
}

function authStep(s, body) {
  const code = body.readInt32BE(0);
  if (code === 0) return;
  if (code === 3) return void s.sock.write(message('p', cstr(PASSWORD)));
  if (code === 5) {
    const md5 = (x) => crypto.createHash('md5').update(x).digest('hex');
    const inner = md5(PASSWORD + USER);
    const outer = md5(Buffer.concat([Buffer.from(inner), body.subarray(4, 8)]));
    return void s.sock.write(message('p', cstr(`md5${outer}`)));
  }
  if (code === 10) {
    // AuthenticationSASL: SCRAM-SHA-256 (RFC 5802/7677), no channel binding.
    const nonce = crypto.randomBytes(18).toString('base64');
    s.scram = { nonce, firstBare: `n=,r=${nonce}`, serverSig: '' };
    const first = Buffer.from(`n,,${s.scram.firstBare}`);
    return void s.sock.write(
      message('p', Buffer.concat([cstr('SCRAM-SHA-256'), int32(first.length), first])),
    );
  }
  if (code === 11) {
    const serverFirst = body.toString('utf8', 4);
    const attr = Object.fromEntries(serverFirst.split(',').map((kv) => [kv[0], kv.slice(2)]));
    if (!attr.r?.startsWith(s.scram.nonce)) throw new Error('SCRAM: server nonce does not extend ours');
    const key = `${attr.s}:${attr.i}`;
    let salted = saltedCache.get(key);
    if (!salted) {
      salted = crypto.pbkdf2Sync(PASSWORD, Buffer.from(attr.s, 'base64'), Number(attr.i), 32, 'sha256');
      saltedCache.set(key, salted);
    }
    const clientKey = hmac(salted, 'Client Key');
    const storedKey = crypto.createHash('sha256').update(clientKey).digest();
    const finalBare = `c=biws,r=${attr.r}`;
    const authMessage = `${s.scram.firstBare},${serverFirst},${finalBare}`;
    const sig = hmac(storedKey, authMessage);
    for (let i = 0; i < clientKey.length; i++) clientKey[i] ^= sig[i];
    s.scram.serverSig = hmac(hmac(salted, 'Server Key'), authMessage).toString('base64');
    return void s.sock.write(message('p', Buffer.from(`${finalBare},p=${clientKey.toString('base64')}`)));
  }
  if (code === 12) {
    const v = /(?:^|,)v=([^,]*)/.exec(body.toString('utf8', 4));
    if (v?.[1] !== s.scram?.serverSig) throw new Error('SCRAM: wrong server signature');
    return;
  }
  throw new Error(`unsupported authentication request ${code}`);
}

/** Server → client: every complete message of the read in one write; ReadyForQuery ends a turn. */
function serverData(s, chunk) {
  const buf = s.buf ? Buffer.concat([s.buf, chunk]) : chunk;
  s.buf = null;
  const n = buf.length;
  let off = 0;
  let sawZ = false;
  let drop = null;
  while (off + 5 <= n) {
    const next = off + 1 + buf.readInt32BE(off + 1);
    if (next > n) break;
    const t = buf[off];
    if (t === T_Z) {
      s.status = buf[off + 5];
      if (s.pending > 0) s.pending--;
      if (s.pending === 0) s.dropParse = 0;
      sawZ = true;
    } else if (t === T_PARSE_COMPLETE && s.dropParse > 0) {
      s.dropParse--;
      (drop ??= []).push(off, next);
    }
    off = next;
  }
  if (off < n) s.buf = buf.subarray(off);
  const c = s.client;
  if (c !== null && off > 0) {
    if (drop === null) c.sock.write(off === n ? buf : buf.subarray(0, off));
    else {
      const parts = [];
      let from = 0;
      for (let i = 0; i < drop.length; i += 2) {
        parts.push(buf.subarray(from, drop[i]));
        from = drop[i + 1];
      }
      parts.push(buf.subarray(from, off));
      c.sock.write(Buffer.concat(parts));
    }
  }
  if (sawZ && s.pending === 0) {
    if (s.status === I) {
      if (c !== null) c.server = null;
      release(s);
    } else if (c === null) {
      // Its client left inside a transaction: end it before anyone else gets the connection.
      s.pending++;
      s.sock.write(ROLLBACK);
    }
  }
}

/** A free connection goes to the first waiting client, or back to the pool. */
function release(s) {
  s.client = null;
  const p = s.pool;
  while (p.waitHead < p.waiting.length) {
    const c = p.waiting[p.waitHead];
    p.waiting[p.waitHead++] = undefined;
    if (p.waitHead > 1024 && p.waitHead * 2 > p.waiting.length) {
      p.waiting.splice(0, p.waitHead);
      p.waitHead = 0;
    }
    if (c.closed) continue;
    c.queued = false;
    assign(c, s);
    return;
  }
  p.idle.push(s);
}

function assign(c, s) {
  c.server = s;
  s.client = c;
  clientForward(c);
}

function serverLost(s) {
  const wasReady = s.ready;
  s.ready = false;
  const i = s.pool.idle.indexOf(s);
  if (i >= 0) s.pool.idle.splice(i, 1);
  if (s.client !== null) {
    s.client.server = null;
    s.client.sock.destroy();
    s.client = null;
  }
  if (wasReady) live--;
  if (stopping) return;
  if (!wasReady && parameterStatus === null) {
    process.stderr.write('min-pooler: could not open the first server connection\n');
    process.exit(1);
  }
  // Keep POOL_SIZE connections: replace this one a little later.
  setTimeout(() => openServer(s.pool, serverOpened), 1000).unref();
}

function serverOpened(s) {
  release(s);
  // Listen once the whole pool is open (bench:proxy waits for a login before it measures).
  if (++live === POOL_SIZE * pools.length && !listener.listening)
    listener.listen(Number(listenPort), '127.0.0.1');
}

// --- clients ----------------------------------------------------------------------------------
// Clients log in with SCRAM-SHA-256 against PGPASSWORD, as with PgBouncer's and pgscale's plain
// userlist. The verifier is derived once here (one salt for every login), so that a login costs
// a few HMACs and no PBKDF2.
const SCRAM_ITERATIONS = 4096;
const SCRAM_SALT_BYTES = crypto.randomBytes(16);
const SCRAM_SALT = SCRAM_SALT_BYTES.toString('base64');
const SALTED = crypto.pbkdf2Sync(PASSWORD, SCRAM_SALT_BYTES, SCRAM_ITERATIONS, 32, 'sha256');
const STORED_KEY = crypto.createHash('sha256').update(hmac(SALTED, 'Client Key')).digest();
const SERVER_KEY = hmac(SALTED, 'Server Key');
const AUTH_SASL = message('R', Buffer.concat([int32(10), cstr('SCRAM-SHA-256'), Buffer.from([0])]));
let nextPid = 1;
/** Pool-wide statement name by Parse body after the name (query text and parameter types). */
const statementNames = new Map();

function clientData(c, chunk) {
  c.buf = c.buf ? Buffer.concat([c.buf, chunk]) : chunk;
  if (!c.started) return clientStartup(c);
  if (c.server !== null) return clientForward(c);
  if (c.queued) return;
  const buf = c.buf;
  // Not yet a complete message: wait for the rest.
  if (buf.length < 5 || buf.readInt32BE(1) + 1 > buf.length) return;
  if (buf[0] === 88) return clientGone(c); // Terminate
  if (buf[0] === 80 && buf[5] !== 0 && answerParse(c)) return;
  const p = router === null ? pools[0] : pools[router.route(c, buf, 0, buf.readInt32BE(1) + 1)];
  const s = p.idle.pop();
  if (s !== undefined) assign(c, s);
  else {
    c.queued = true;
    p.waiting.push(c);
  }
}

function clientStartup(c) {
  if (c.authenticating) return clientAuth(c);
  for (;;) {
    const buf = c.buf;
    if (buf === null || buf.length < 8) return;
    const len = buf.readInt32BE(0);
    if (len < 8 || len > 10000) return void c.sock.end(errorResponse('08P01', 'invalid startup packet'));
    if (buf.length < len) return;
    const code = buf.readInt32BE(4);
    c.buf = buf.length > len ? buf.subarray(len) : null;
    if (code === 80877103 || code === 80877104) {
      c.sock.write('N'); // SSLRequest, GSSENCRequest: no
      continue;
    }
    if (code === 80877102) return void c.sock.destroy(); // CancelRequest: ignored
    if (code >> 16 !== 3) return void c.sock.end(errorResponse('0A000', 'unsupported frontend protocol'));
    const params = buf.toString('utf8', 8, len).split('\0');
    const user = params[params.indexOf('user') + 1];
    if (params.indexOf('user') % 2 !== 0 || user !== USER)
      return void c.sock.end(errorResponse('28000', `no such user: ${user ?? '(none)'}`));
    c.authenticating = true;
    c.sock.write(AUTH_SASL);
    return clientAuth(c);
  }
}

/** The client's SCRAM-SHA-256 exchange (server side, RFC 5802 §3), then the greeting. */
function clientAuth(c) {
  for (;;) {
    const buf = c.buf;
    if (buf === null || buf.length < 5) return;
    const next = 1 + buf.readInt32BE(1);
    if (next > buf.length) return;
    if (buf[0] !== 112) return void c.sock.end(errorResponse('08P01', 'expected a SASL response'));
    const body = buf.subarray(5, next);
    c.buf = next < buf.length ? buf.subarray(next) : null;
    const fail = () =>
      void c.sock.end(errorResponse('28P01', `password authentication failed for user "${USER}"`));
    if (c.scram === null) {
      // SASLInitialResponse: mechanism, length, client-first-message "n,,n=…,r=nonce".
      const mEnd = body.indexOf(0);
      const first = body.toString('utf8', mEnd + 5);
      const r = /(?:^|,)r=([^,]+)/.exec(first.slice(3))?.[1];
      if (body.toString('utf8', 0, mEnd) !== 'SCRAM-SHA-256' || !/^[ny],,/.test(first) || !r) return fail();
      const serverFirst = `r=${r}${crypto.randomBytes(18).toString('base64')},s=${SCRAM_SALT},i=${SCRAM_ITERATIONS}`;
      c.scram = { bare: first.slice(3), serverFirst };
      c.sock.write(message('R', Buffer.concat([int32(11), Buffer.from(serverFirst)])));
      continue;
    }
    // SASLResponse: "c=…,r=nonce,p=proof"; ClientKey = proof XOR HMAC(StoredKey, AuthMessage).
    const final = body.toString('utf8');
    const p = final.lastIndexOf(',p=');
    const withoutProof = final.slice(0, p);
    if (
      p < 0 ||
      /(?:^|,)r=([^,]+)/.exec(withoutProof)?.[1] !==
        c.scram.serverFirst.slice(2, c.scram.serverFirst.indexOf(','))
    )
      return fail();
    const authMessage = `${c.scram.bare},${c.scram.serverFirst},${withoutProof}`;
    const key = Buffer.from(final.slice(p + 3), 'base64');
    const sig = hmac(STORED_KEY, authMessage);
    if (key.length !== sig.length) return fail();
    for (let i = 0; i < key.length; i++) key[i] ^= sig[i];
    if (!crypto.timingSafeEqual(crypto.createHash('sha256').update(key).digest(), STORED_KEY)) return fail();
    const v = Buffer.from(`v=${hmac(SERVER_KEY, authMessage).toString('base64')}`);
    const backendKey = Buffer.allocUnsafe(8);
    backendKey.writeInt32BE(nextPid++ & 0x7fffffff, 0);
    crypto.randomFillSync(backendKey, 4, 4);
    c.sock.write(
      Buffer.concat([
        message('R', Buffer.concat([int32(12), v])),
        AUTH_OK,
        parameterStatus,
        message('K', backendKey),
        READY_IDLE,
      ]),
    );
    c.scram = null;
    c.authenticating = false;
    c.started = true;
    if (c.buf !== null) clientData(c, Buffer.alloc(0));
    return;
  }
}

/**
 * Client → its server connection: all complete messages in one write. Counts what ReadyForQuery
 * will answer, stops at Terminate, and renames named statements (the only rewriting it does).
 */
function clientForward(c) {
  const s = c.server;
  const buf = c.buf;
  if (buf === null) return;
  const n = buf.length;
  let off = 0;
  let named = false;
  let terminate = false;
  while (off + 5 <= n) {
    const next = off + 1 + buf.readInt32BE(off + 1);
    if (next > n) break;
    const t = buf[off];
    if (t === 83 || t === 81 || t === 70)
      s.pending++; // Sync, Query, FunctionCall
    else if (t === 88) {
      terminate = true;
      break;
    } else if (t === 80)
      named ||= buf[off + 5] !== 0; // Parse
    else if (t === 66)
      named ||= buf[buf.indexOf(0, off + 5) + 1] !== 0; // Bind
    else if (t === 68 || t === 67) named ||= buf[off + 5] === 83 && buf[off + 6] !== 0; // Describe/Close 'S'
    off = next;
  }
  c.buf = terminate || off === n ? null : buf.subarray(off);
  if (off > 0) s.sock.write(named ? renamed(c, s, buf, off) : off === n ? buf : buf.subarray(0, off));
  if (terminate) clientGone(c);
}

/** The messages of buf[0, end) with client statement names replaced by pool-wide ones. */
function renamed(c, s, buf, end) {
  const parts = [];
  for (let off = 0; off < end;) {
    const next = off + 1 + buf.readInt32BE(off + 1);
    const t = buf[off];
    if (t === 80 && buf[off + 5] !== 0) {
      const nameEnd = buf.indexOf(0, off + 5);
      const st = defineStatement(c, buf.toString('utf8', off + 5, nameEnd), buf.subarray(nameEnd + 1, next));
      if (s.prepared.has(st.name)) parts.push(EMPTY_PARSE);
      else {
        s.prepared.add(st.name);
        parts.push(st.parse);
      }
    } else if (t === 66 || ((t === 68 || t === 67) && buf[off + 5] === 83 && buf[off + 6] !== 0)) {
      const from = t === 66 ? buf.indexOf(0, off + 5) + 1 : off + 6;
      const nameEnd = buf.indexOf(0, from);
      const st = nameEnd > from ? c.statements?.get(buf.toString('utf8', from, nameEnd)) : undefined;
      if (st === undefined) parts.push(buf.subarray(off, next));
      else if (t === 67) {
        c.statements?.delete(buf.toString('utf8', from, nameEnd));
        parts.push(CLOSE_UNNAMED);
      } else {
        if (!s.prepared.has(st.name)) {
          s.prepared.add(st.name);
          s.dropParse++;
          parts.push(st.parse);
        }
        const head = buf.subarray(off + 5, from);
        const tail = buf.subarray(nameEnd, next);
        const body = Buffer.concat([head, Buffer.from(st.name), tail]);
        parts.push(message(String.fromCharCode(t), body));
      }
    } else parts.push(buf.subarray(off, next));
    off = next;
  }
  return Buffer.concat(parts);
}

function defineStatement(c, clientName, rest) {
  const key = rest.toString('latin1');
  let name = statementNames.get(key);
  if (name === undefined) {
    name = `mp_${statementNames.size + 1}`;
    statementNames.set(key, name);
  }
  const st = {
    name,
    parse: message('P', Buffer.concat([cstr(name), rest])),
    keyParam: router === null ? -1 : router.keyParam(rest), // the parameter routed by, if sharded
  };
  (c.statements ??= new Map()).set(clientName, st);
  return st;
}

/**
 * A client with no connection sends only Parses of named statements the pool already knows, then
 * Sync: answered here, without a server connection (the statement is prepared at its Bind).
 */
function answerParse(c) {
  const buf = c.buf;
  const n = buf.length;
  const found = [];
  let off = 0;
  while (off + 5 <= n) {
    const next = off + 1 + buf.readInt32BE(off + 1);
    if (next > n) return false;
    if (buf[off] === 83) {
      if (next !== n || found.length === 0) return false;
      for (const [name, rest] of found) defineStatement(c, name, rest);
      c.buf = null;
      const reply = [];
      for (let i = 0; i < found.length; i++) reply.push(PARSE_COMPLETE);
      reply.push(READY_IDLE);
      c.sock.write(Buffer.concat(reply));
      return true;
    }
    if (buf[off] !== 80 || buf[off + 5] === 0) return false;
    const nameEnd = buf.indexOf(0, off + 5);
    const rest = buf.subarray(nameEnd + 1, next);
    if (!statementNames.has(rest.toString('latin1'))) return false;
    found.push([buf.toString('utf8', off + 5, nameEnd), rest]);
    off = next;
  }
  return false;
}

/** Terminate or a closed socket: what was sent finishes on the server, then it is released. */
function clientGone(c) {
  if (c.closed) return;
  c.closed = true;
  c.buf = null;
  c.sock.destroy();
  const s = c.server;
  c.server = null;
  if (s === null || s.client !== c) return;
  s.client = null;
  if (s.pending > 0) return; // serverData releases it (or rolls back) at its ReadyForQuery
  if (s.status === I) release(s);
  else {
    s.pending++;
    s.sock.write(ROLLBACK);
  }
}

const listener = net.createServer((sock) => {
  sock.setNoDelay(true);
  const c = {
    sock,
    buf: null,
    started: false,
    authenticating: false,
    scram: null,
    server: null,
    queued: false,
    closed: false,
    statements: null, // client name → { name, parse }, made at its first named Parse
  };
  sock.on('data', (chunk) => clientData(c, chunk));
  sock.on('error', () => clientGone(c));
  sock.on('close', () => clientGone(c));
});
listener.on('error', (e) => {
  process.stderr.write(`min-pooler: ${e.message}\n`);
  process.exit(1);
});

for (const pool of pools) for (let i = 0; i < POOL_SIZE; i++) openServer(pool, serverOpened);
const stop = () => {
  stopping = true;
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
