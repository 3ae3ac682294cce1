/**
 * LISTEN/NOTIFY under transaction pooling. A pooled connection serves many clients, so a LISTEN
 * on it would deliver notifications to whoever holds it next. Instead each pool has one listener
 * connection that LISTENs on every channel some client listens to, and fans each notification
 * out to those clients (PgBouncer users asked for this for years; PgDog does it). The connection
 * is opened on the first LISTEN and re-established, with its channels, if it is lost.
 */
import type { TypedFrame } from '../protocol/framer.js';
import { decodeNotificationResponse } from '../protocol/backend-messages.js';
import type { ServerConn } from './backend/server-conn.js';
import type { Pool } from './backend/pool.js';
import { queryMessage } from './rewrite.js';

export interface NotificationSink {
  deliverNotification(bytes: Buffer): void;
}

export class ListenerHub {
  private conn: ServerConn | null = null;
  private connecting: Promise<ServerConn | null> | null = null;
  private readonly subscribers = new Map<string, Set<NotificationSink>>();
  /** Per channel: settles once the server has run our LISTEN for it. */
  private readonly ready = new Map<string, Promise<boolean>>();
  private closed = false;
  /** Resolvers of statements sent whose ReadyForQuery has not come yet, in order. */
  private outstanding: ((ok: boolean) => void)[] = [];

  constructor(private readonly pool: Pool) {}

  get channelCount(): number {
    return this.subscribers.size;
  }

  /**
   * Adds a subscriber; resolves true once the listener connection LISTENs on the channel (so a
   * NOTIFY sent after the client's LISTEN returned is never missed), false if it could not.
   */
  subscribe(channel: string, sink: NotificationSink): Promise<boolean> {
    let set = this.subscribers.get(channel);
    if (!set) {
      set = new Set();
      this.subscribers.set(channel, set);
      this.ready.set(channel, this.send(`LISTEN ${quoteIdent(channel)}`));
    }
    set.add(sink);
    return this.ready.get(channel) ?? Promise.resolve(true);
  }

  unsubscribe(channel: string, sink: NotificationSink): void {
    const set = this.subscribers.get(channel);
    if (!set) return;
    set.delete(sink);
    if (set.size === 0) {
      this.subscribers.delete(channel);
      this.ready.delete(channel);
      void this.send(`UNLISTEN ${quoteIdent(channel)}`);
    }
  }

  private send(sql: string): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    return this.ensure().then(
      (c) =>
        new Promise<boolean>((resolve) => {
          if (!c) return resolve(false);
          this.outstanding.push(resolve);
          c.write(queryMessage(sql));
        }),
    );
  }

  private ensure(): Promise<ServerConn | null> {
    if (this.conn && !this.conn.closed) return Promise.resolve(this.conn);
    if (this.connecting) return this.connecting;
    this.connecting = this.pool.openDedicated('pgscale listener').then(
      (c) => {
        this.connecting = null;
        this.conn = c;
        c.setHandler((frames) => this.onFrames(frames));
        c.onClose(() => this.onLost(c));
        return c;
      },
      () => {
        this.connecting = null;
        return null;
      },
    );
    return this.connecting;
  }

  private onFrames(frames: TypedFrame[]): void {
    for (const f of frames) {
      if (f.type === 'A') {
        const n = decodeNotificationResponse(f.payload);
        if (!n.ok) continue;
        const bytes = Buffer.from(f.bytes);
        for (const s of this.subscribers.get(n.value.channel) ?? []) s.deliverNotification(bytes);
      } else if (f.type === 'Z') {
        this.outstanding.shift()?.(true);
      }
    }
  }

  private onLost(c: ServerConn): void {
    if (this.conn !== c || this.closed) return;
    this.conn = null;
    for (const r of this.outstanding.splice(0)) r(false);
    const channels = [...this.subscribers.keys()];
    if (channels.length > 0) {
      setTimeout(() => {
        for (const ch of channels)
          if (this.subscribers.has(ch)) this.ready.set(ch, this.send(`LISTEN ${quoteIdent(ch)}`));
      }, 500).unref();
    }
  }

  close(): void {
    this.closed = true;
    this.conn?.close();
    this.conn = null;
  }
}

function quoteIdent(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}
