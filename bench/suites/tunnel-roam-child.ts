/**
 * The two TCP ends of the `tunnel` suite's address-change figure, run inside network namespaces
 * (where the bench process can neither listen nor dial):
 *
 *   node tunnel-roam-child.js echo           listen on 127.0.0.1:0, print "listening PORT", echo
 *   node tunnel-roam-child.js ping PORT      send one byte every PING_MS to 127.0.0.1:PORT; print
 *       "rtt MS" for each echo and "gap START END" (Date.now() ms) for each echo that came more
 *       than GAP_MS after the one before it: a stall of the path and when it ended
 *
 * Both exit when their stdin ends (the bench's pipe), however the bench ends.
 */
import { createServer, connect } from 'node:net';

const PING_MS = 5;
const GAP_MS = 50;

function main(): void {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
  const [mode, port] = process.argv.slice(2);
  if (mode === 'echo') {
    const server = createServer({ noDelay: true }, (s) => {
      s.on('error', () => {});
      s.pipe(s);
    });
    server.listen(0, '127.0.0.1', () => process.stdout.write(`listening ${(server.address() as { port: number }).port}\n`));
    return;
  }
  if (mode !== 'ping') throw new Error('usage: tunnel-roam-child echo | ping PORT');
  const s = connect({ host: '127.0.0.1', port: Number(port), noDelay: true });
  s.on('error', (e) => {
    process.stdout.write(`error ${(e as NodeJS.ErrnoException).code ?? e.message}\n`);
    process.exit(1);
  });
  const sent: number[] = [];
  let last = 0;
  s.on('data', (c: Buffer) => {
    const now = Date.now();
    for (let i = 0; i < c.length; i++) {
      const t = sent.shift();
      if (t !== undefined) process.stdout.write(`rtt ${now - t}\n`);
    }
    if (last > 0 && now - last > GAP_MS) process.stdout.write(`gap ${last} ${now}\n`);
    last = now;
  });
  s.once('connect', () => {
    setInterval(() => {
      // One byte in flight at a time at most a few hundred: a stalled path queues, it is not flooded.
      if (sent.length > 1000) return;
      sent.push(Date.now());
      s.write(Buffer.of(1));
    }, PING_MS);
  });
}

main();
