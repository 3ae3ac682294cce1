/**
 * Port checks before anything is started, so that a clash is reported by name ("port 54321 of
 * node s0n1 is in use") instead of surfacing as a PostgreSQL start-up failure in a log file.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** Resolves true when something already listens on host:port (or binding is refused). */
export function portInUse(port: number, host: string): Promise<boolean> {
  const hosts = host === 'localhost' ? ['127.0.0.1', '::1'] : [host];
  return Promise.all(hosts.map((h) => bindable(port, h))).then((r) => r.some((ok) => !ok));
}

function bindable(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', (e: NodeJS.ErrnoException) => {
      // An address family the machine lacks (no ::1) says nothing about the port.
      resolve(e.code === 'EADDRNOTAVAIL' || e.code === 'EAFNOSUPPORT');
    });
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/**
 * The kernel's range for outgoing connections' local ports (Linux), which listening ports chosen
 * at random must avoid: a client connection may take one of them between our check and the bind.
 */
function ephemeralRange(): [number, number] {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    if (lo && hi) return [lo, hi];
  } catch {
    // not Linux: IANA's dynamic range (macOS, BSD)
  }
  return [49152, 65535];
}

/**
 * A base port such that base..base+count-1 are all free on localhost (for tests and the demo),
 * below the ephemeral range so that no outgoing connection takes one of them meanwhile.
 */
export async function findFreePortBlock(count: number, from = 10000, to?: number): Promise<number> {
  to ??= Math.max(from + count + 1000, ephemeralRange()[0] - 1);
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = from + Math.floor(Math.random() * (to - from - count));
    let ok = true;
    for (let p = base; p < base + count && ok; p++) ok = !(await portInUse(p, 'localhost'));
    if (ok) return base;
  }
  throw new Error(`no block of ${count} free ports found`);
}
