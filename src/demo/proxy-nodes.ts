/** `SHOW NODES` on a pgscale proxy's admin console: each node's role, address, read set, reads. */
import pg from 'pg';

export interface ProxyNode {
  role: string;
  addr: string;
  inReadSet: boolean;
  readsServed: number;
}

export async function showNodes(t: {
  host: string;
  port: number;
  user: string;
  password: string;
}): Promise<ProxyNode[]> {
  const c = new pg.Client({ ...t, database: 'pgscale' });
  c.on('error', () => undefined);
  await c.connect();
  try {
    const r = await c.query<{ role: string; addr: string; in_read_set: string; reads_served: string | null }>(
      'SHOW NODES',
    );
    return r.rows.map((x) => ({
      role: x.role,
      addr: x.addr,
      inReadSet: x.in_read_set === 't',
      readsServed: Number(x.reads_served ?? 0),
    }));
  } finally {
    await c.end();
  }
}
