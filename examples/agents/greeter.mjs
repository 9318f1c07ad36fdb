// The greeter agent of README's "Your first agent": connects to ctx.state.peer (an agent id,
// never a host and port) and says hello once a second, logging every reply. Its connection
// survives moves of either end: after its own move it takes the connection that came along. It
// finishes when the connection ends for good.
import { defineAgent } from 'ferry/agent';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export default defineAgent({
  async run(ctx) {
    const sock = ctx.connections[0] ?? (await ctx.connect(ctx.state.peer));
    const text = new TextDecoder();
    sock.on('data', (bytes) => ctx.log(`reply: ${text.decode(bytes)}`));
    // The peer may fail (it stopped, or its host died): say so, and finish instead of writing
    // into a closed connection.
    sock.on('error', (err) => ctx.log(`connection ended: ${err.code ?? err.message}`));
    while (!sock.destroyed) {
      ctx.state.hellos = (ctx.state.hellos ?? 0) + 1;
      sock.write(`hello ${ctx.state.hellos}\n`);
      await sleep(1000);
    }
    return { hellos: ctx.state.hellos };
  },
});
