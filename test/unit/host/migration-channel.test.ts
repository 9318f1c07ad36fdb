// The migration channel over a real loopback socket: the source's MIG_FINISH and its first sealed
// step can reach the destination in one read, before the destination has derived its keys. The
// channel must keep such frames and open them only when they are consumed (found by `ferry demo`:
// a coalesced read made the destination refuse with "not a MIG_STEP").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { MigrationChannel } from '../../../src/host/index.js';
import { Identity } from '../../../src/identity/index.js';
import { systemClock } from '../../../src/util/index.js';
import { FrameDecoder, MigrationStep } from '../../../src/wire/index.js';

async function pair(): Promise<{ dest: Promise<MigrationChannel>; sourceSocket: Socket; close: () => void; destKey: Identity }> {
  const destKey = Identity.generate();
  let resolveDest!: (c: Promise<MigrationChannel>) => void;
  const dest = new Promise<Promise<MigrationChannel>>((r) => (resolveDest = r));
  const server = createServer((sock) => {
    const decoder = new FrameDecoder();
    const onData = (c: Buffer): void => {
      decoder.push(c);
      const body = decoder.next();
      if (!body) return;
      sock.off('data', onData);
      resolveDest(MigrationChannel.accept(sock, Buffer.from(body), decoder.takeRest(), destKey, systemClock));
    };
    sock.on('data', onData);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const sourceSocket = connect((server.address() as { port: number }).port, '127.0.0.1');
  await once(sourceSocket, 'connect');
  return { dest: dest.then((d) => d), sourceSocket, destKey, close: () => server.close() };
}

test('a sealed step in the same read as MIG_FINISH is opened once the keys exist', async () => {
  const { dest, sourceSocket, destKey, close } = await pair();
  try {
    // Hold the source's writes after the HELLO so that FINISH and the first sealed step leave in
    // one segment.
    const write = sourceSocket.write.bind(sourceSocket);
    let writes = 0;
    const held: Buffer[] = [];
    (sourceSocket as unknown as { write: (b: Buffer) => boolean }).write = (b: Buffer) => {
      if (++writes === 1) return write(b);
      held.push(b);
      return true;
    };
    const source = await MigrationChannel.open(sourceSocket, Identity.generate(), systemClock, destKey.id as never);
    source.send(MigrationStep.DELEGATE, Buffer.from('hello world'));
    assert.equal(held.length, 2, 'FINISH and DELEGATE were held');
    write(Buffer.concat(held));
    const ch = await dest;
    const got = await ch.recv([MigrationStep.DELEGATE]);
    assert.equal(got.payload.toString(), 'hello world');
    ch.close();
    source.close();
  } finally {
    sourceSocket.destroy();
    close();
  }
});
