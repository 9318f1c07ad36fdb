// The echo agent of README's "Your first agent": every connection gets back what it sends. After
// a move, the connections that came along (ctx.connections) are echoed too, from where they were.
import { defineAgent } from 'ferry/agent';

const echo = (sock) => {
  sock.on('error', (err) => console.log('connection ended:', err.code ?? err.message));
  sock.pipe(sock);
};

export default defineAgent({
  async run(ctx) {
    ctx.log(`echo ${ctx.id} runs on host ${ctx.hostId} with ${ctx.connections.length} connection(s)`);
    for (const sock of ctx.connections) echo(sock);
    const server = await ctx.listen();
    for await (const sock of server) echo(sock);
  },
});
