// client.js KIND URL: the clients users run, against portier.  Prints one JSON line with what
// happened and exits 0 on success, 1 on failure (with the error).
//   ws URL         ws's WebSocket: open, send "hello", wait for "echo:hello"
//   socketio URL   socket.io-client over WebSocket only: connect, emit "ping" with an ack
//   polling URL    socket.io-client starting with long-polling, then upgrading
'use strict';
const [kind, url] = process.argv.slice(2);
const done = (ok, what) => {
  console.log(JSON.stringify({ ok, ...what }));
  process.exit(ok ? 0 : 1);
};
setTimeout(() => done(false, { error: 'timed out' }), 10000);

if (kind === 'ws') {
  const WebSocket = require('ws');
  const ws = new WebSocket(url);
  ws.on('open', () => ws.send('hello'));
  ws.on('message', (m) => { ws.close(); done(String(m) === 'echo:hello', { reply: String(m) }); });
  ws.on('unexpected-response', (req, res) => done(false, { error: 'status ' + res.statusCode }));
  ws.on('error', (e) => done(false, { error: String(e) }));
} else if (kind === 'socketio' || kind === 'polling') {
  const { io } = require('socket.io-client');
  const transports = kind === 'socketio' ? ['websocket'] : ['polling', 'websocket'];
  const socket = io(url, { transports, reconnection: false, timeout: 5000 });
  socket.on('connect_error', (e) => done(false, { error: String(e) }));
  socket.on('connect', () => {
    socket.emit('ping', 'x', (reply) => {
      // After a polling start, wait for the upgrade to WebSocket before judging.
      const finish = () => {
        const transport = socket.io.engine.transport.name;
        socket.close();
        done(reply === 'pong:x', { reply, transport });
      };
      if (kind === 'polling' && socket.io.engine.transport.name !== 'websocket')
        socket.io.engine.once('upgrade', finish);
      else
        finish();
    });
  });
} else {
  done(false, { error: 'unknown kind ' + kind });
}
