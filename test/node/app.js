// app.js PORT_FILE: a real Node application for portier's integration tests, written the way
// apps behind nginx are: express for HTTP, ws for plain WebSockets (on /ws) and socket.io (on
// /socket.io/), all on one port of 127.0.0.1.  Writes the port it listens on to PORT_FILE.
//
//   GET  / or /headers   the request's head as JSON: {method, url, httpVersion, rawHeaders}
//   GET  /stream?id=ID&n=N[&accel=no|yes]  text/html in N pieces, each after GET /next?id=ID
//                        (server-side rendering), with X-Accel-Buffering: accel if given
//   GET  /big?bytes=N    200 with one X-Big header of N bytes
//   ANY  /body           the request's body length and method as JSON
//   ws   /ws             echoes every message, prefixed with "echo:"
//   socket.io  event "ping" answered with "pong" and the same payload
'use strict';
const fs = require('fs');
const http = require('http');
const express = require('express');
const { WebSocketServer } = require('ws');
const { Server } = require('socket.io');

const app = express();

app.get(['/', '/headers'], (req, res) => {
  res.json({ method: req.method, url: req.url, httpVersion: req.httpVersion,
             rawHeaders: req.rawHeaders });
});

// Streams wait for the test: /stream?id=ID&n=N writes piece 0, then piece i each time
// GET /next?id=ID arrives (asked directly, not through portier), so a test can tell that
// a piece reached it before the next one was even written.
const waiting = new Map();
function stream(req, res, accel) {
  const n = Number(req.query.n || 3), id = String(req.query.id || '');
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  if (accel) res.setHeader('X-Accel-Buffering', accel);
  let i = 0;
  const piece = () => {
    res.write(`<p>piece ${i} ${'x'.repeat(200)}</p>\n`);
    if (++i === n) { waiting.delete(id); return res.end(); }
    waiting.set(id, piece);
  };
  piece();
}
app.get('/stream', (req, res) => stream(req, res, req.query.accel));
app.get('/next', (req, res) => {
  const next = waiting.get(String(req.query.id));
  if (!next) return res.status(404).send('no such stream\n');
  next();
  res.send('ok\n');
});

app.get('/big', (req, res) => {
  res.setHeader('X-Big', 'b'.repeat(Number(req.query.bytes || 1000)));
  res.type('text/plain').send('big headers\n');
});

app.all('/body', (req, res) => {
  let len = 0;
  req.on('data', (d) => { len += d.length; });
  req.on('end', () => res.json({ method: req.method, length: len,
                                  te: req.headers['transfer-encoding'] || null,
                                  cl: req.headers['content-length'] || null }));
});

const server = http.createServer(app);
// Node's default limit on a request head is 16 KiB; the tests send larger ones on purpose.
server.maxHeaderSize = 64 * 1024;

const wss = new WebSocketServer({ noServer: true });
wss.on('connection', (ws) => ws.on('message', (m) => ws.send('echo:' + m)));
const io = new Server(server, { transports: ['websocket', 'polling'] });
io.on('connection', (socket) => socket.on('ping', (p, ack) => ack('pong:' + p)));

server.on('upgrade', (req, socket, head) => {
  if (req.url.startsWith('/ws')) {
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  }
  // /socket.io/ upgrades are socket.io's own listener's.
});

server.listen(0, '127.0.0.1', () => {
  fs.writeFileSync(process.argv[2], String(server.address().port));
});
