// Scenario: what a user of ssh -L meets when a tunnel cannot listen. With a serving end (run with
// --allow-remote-listen) and one connecting end already listening on a port, a second `ferry
// tunnel connect --listen` on that same port, one on a name that does not resolve, and one on an
// address that is not this host's each exit 2 at once with one stderr line naming
// FERRY_ERR_TUNNEL_LISTEN and why (in use, does not resolve, not an address of this host). A
// reverse listen (-R) on a port in use at the serving end exits 2 with FERRY_ERR_TUNNEL_REFUSED,
// and the serving end logs one tunnel_listen_failed line with the errno. A --send-budget that is
// not a size from 1 MiB to 1024 GiB exits 2 with one line. The running ends are unharmed, and
// `ferry tunnel --help` shows ssh-style examples and the exit statuses.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Processes, poll } from '../helpers/processes.js';
import { startTunnelPair } from '../helpers/tunnel.js';

const procs = new Processes();
after(() => procs.killAll());

test('tunnel connect: a --listen in use, unresolvable or not ours, and a -R in use, fail with a code and exit 2', { timeout: 60_000 }, async () => {
  const pair = await startTunnelPair(procs, '127.0.0.1:9', { serveArgs: ['--allow-remote-listen'] });
  try {
    const connect = (...args: string[]): ReturnType<Processes['run']> => procs.run(['tunnel', 'connect', pair.serveAgent, '--key', join(pair.dir, 'connect.key'), '--rendezvous', pair.rendezvous, ...args]);
    for (const [listen, why] of [
      [`127.0.0.1:${pair.listenPort}`, /the port is in use \(EADDRINUSE\)/],
      ['no-such-host.invalid:0', /the name does not resolve \((ENOTFOUND|EAI_AGAIN)\)/],
      ['192.0.2.1:0', /not an address of this host \(EADDRNOTAVAIL\)/],
    ] as const) {
      const r = await connect('--listen', listen);
      assert.equal(r.code, 2, `--listen ${listen}: ${r.err}`);
      assert.equal(r.out, '', 'no ready line');
      assert.match(r.err, new RegExp(`^ferry: tunnel: FERRY_ERR_TUNNEL_LISTEN: cannot listen on ${listen.replace(/\./g, '\\.')}: `, 'm'));
      assert.match(r.err, why);
    }

    // -R: the serving end cannot bind the port (the connecting end holds it): refused, logged once.
    const reverse = await connect('--remote-listen', `127.0.0.1:${pair.listenPort}`, '--to', '127.0.0.1:9');
    assert.equal(reverse.code, 2, reverse.err);
    assert.match(reverse.err, /FERRY_ERR_TUNNEL_REFUSED: .*it cannot bind/);
    const failed = await poll(
      () => {
        const lines = pair.serve.err().split('\n').filter((l) => l.includes('"tunnel_listen_failed"'));
        return lines.length > 0 ? lines : undefined;
      },
      5000,
      () => `no tunnel_listen_failed line: ${pair.serve.err().slice(-1500)}`,
    );
    assert.equal(failed.length, 1, failed.join('\n'));
    assert.deepEqual(
      (({ code, errno }) => ({ code, errno }))(JSON.parse(failed[0]!) as { code: string; errno: string }),
      { code: 'FERRY_ERR_TUNNEL_REFUSED', errno: 'EADDRINUSE' },
    );

    // The ends that run are unharmed.
    assert.equal(pair.serve.child.exitCode, null);
    assert.equal(pair.connect.child.exitCode, null);

    // A send budget that is not a size, too small or too large: exit 2 at once, one line.
    for (const size of ['12', '0x10', '5TiB', '2048GiB', '']) {
      const r = await procs.run(['tunnel', 'serve', '--key', join(pair.dir, 'other.key'), '--to', '127.0.0.1:9', '--allow-any', '--send-budget', size]);
      assert.equal(r.code, 2, `--send-budget '${size}': ${r.err}`);
      assert.equal(r.out, '', 'no ready line');
      assert.match(r.err, new RegExp(`^ferry: --send-budget must be a size from 1MiB to 1024GiB .*, got '${size}'$`, 'm'));
    }

    const help = await procs.run(['tunnel', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.out, /^Examples \(as ssh -L /m);
    assert.match(help.out, /^ {2}laptop\$ ferry tunnel connect SERVE_ID .*\\$/m);
    assert.match(help.out, /^Exit status: /m);
  } finally {
    await pair.close();
  }
});
