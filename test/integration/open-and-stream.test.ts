// Scenario: two agents on two hosts open a secure connection by agent id and stream both ways;
// suspend and resume from either end; the data socket is cut; the stream is intact each time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pattern, Reader, startHosts, waitFor } from '../helpers/harness.js';

for (const security of [true, false]) {
  test(`open, stream both ways, suspend/resume, cut (security ${security})`, async () => {
    const net = await startHosts(2, { security });
    try {
      const [h0, h1] = net.hosts as [typeof net.hosts[0], typeof net.hosts[0]];
      const a = await h0.addAgent();
      const b = await h1.addAgent();
      const server = h1.listen(b.id);
      const accepted = server.accept();
      const ca = await h0.connect(a.id, b.id);
      const cb = await accepted;
      assert.equal(ca.state, 'ESTABLISHED');
      const ra = new Reader();
      const rb = new Reader();
      ra.attach(ca);
      rb.attach(cb);
      ca.write(pattern(1, 0, 100_000));
      cb.write(pattern(2, 0, 50_000));
      await waitFor(() => rb.length === 100_000 && ra.length === 50_000, 5000, 'first bytes');
      await ca.suspend();
      assert.equal(ca.state, 'SUSPENDED');
      await waitFor(() => cb.state === 'SUSPENDED', 5000, 'peer suspended');
      ca.write(pattern(1, 100_000, 10_000));
      await cb.resumeConnection();
      await waitFor(() => ca.state === 'ESTABLISHED', 5000, 'resumed');
      await waitFor(() => rb.length === 110_000, 5000, 'bytes after resume');
      h0.breakDataSockets(a.id);
      ca.write(pattern(1, 110_000, 10_000));
      cb.write(pattern(2, 50_000, 10_000));
      await waitFor(() => rb.length === 120_000 && ra.length === 60_000, 8000, 'bytes after cut');
      assert.ok(rb.bytes().equals(pattern(1, 0, 120_000)));
      assert.ok(ra.bytes().equals(pattern(2, 0, 60_000)));
      await ca.close();
      await waitFor(() => cb.state === 'CLOSED', 5000, 'peer closed');
    } finally {
      await net.close();
    }
  });
}
