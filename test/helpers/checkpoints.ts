// A valid connection checkpoint (the body a move carries per connection), for codec tests to
// start from and break one field at a time.
import type { EndpointCheckpoint } from '../../src/connection/checkpoint.js';

export function endpointCheckpoint(): EndpointCheckpoint {
  return {
    v: 1,
    connectionId: 'ab'.repeat(16),
    role: 'client',
    localAgent: '01'.repeat(16),
    peerAgent: 'fe'.repeat(16),
    secure: true,
    master: '5a'.repeat(32),
    controlCounter: 7,
    peerCounter: 9,
    send: { acked: 1000, data: Buffer.from('unacked bytes').toString('base64'), fin: 1013 },
    receive: { delivered: 500, data: Buffer.from('unread').toString('base64'), fin: null },
    peer: { ip: '10.0.0.2', controlPort: 40000, redirectorPort: 50000, epoch: 3 },
    sendBudget: 65536,
    receiveWindow: 65536,
    resume: true,
    proven: { ip: '10.0.0.2', controlPort: 40000, redirectorPort: 50000 },
    peerEpoch: 3,
  };
}
