// The floor of any Node.js proxy: a TCP relay that does nothing but copy bytes, one server
// connection per client (no pooling, no parsing, authentication passed through to the server).
// bench:proxy's `node-pipe` target runs it, so that the same run shows what Node's own socket
// layer costs per transaction on this machine, next to PgBouncer and pgscale.
// Usage: node bench/node-pipe.mjs LISTEN_PORT SERVER_HOST SERVER_PORT
import net from 'node:net';

const [listenPort, serverHost, serverPort] = process.argv.slice(2);
const server = net.createServer((client) => {
  client.setNoDelay(true);
  const upstream = net.connect({ host: serverHost, port: Number(serverPort) });
  upstream.setNoDelay(true);
  client.on('data', (d) => upstream.write(d));
  upstream.on('data', (d) => client.write(d));
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('close', close);
  upstream.on('close', close);
  client.on('error', close);
  upstream.on('error', close);
});
server.listen(Number(listenPort), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
