#!/usr/bin/env node
// A PutEvents responder for benchmarks only (make bench-events): answers
// each call DELAY ms after it arrived, like a remote bus, at a CPU cost
// far below the Python stand-in's, so that on a small machine the bench
// measures the service's relay rather than the stand-in.
//
// It checks the wire shape the bus checks (POST, X-Amz-Target
// AWSEvents.PutEvents, a JSON body with 1..10 Entries of Source,
// DetailType, Detail and EventBusName, at most 256 KB) and answers like
// PutEvents ({"FailedEntryCount":0,"Entries":[{"EventId":...}]}); a
// malformed call gets a 400 ValidationException and is counted. It does
// NOT verify SigV4: tests/aws/eventbridge_server.py (botocore) does that
// in `make check`.
//
// Control (same port): GET /__control/health, /__control/stats
// ({calls, entries_accepted, rejected}), /__control/latency ({events,
// p50_ms, p99_ms, max_ms}: receipt minus the detail's occurredAt).
//
// Usage: node tools/bench/putevents_fast.js PORT DELAY_MS
'use strict';
const http = require('http');
const crypto = require('crypto');

const port = parseInt(process.argv[2], 10);
const delay = parseInt(process.argv[3] || '20', 10);
let calls = 0, accepted = 0, rejected = 0;
const delays = [];

function reject(res, msg) {
  rejected++;
  res.writeHead(400, { 'Content-Type': 'application/x-amz-json-1.1' });
  res.end(JSON.stringify({ __type: 'ValidationException', message: msg }));
}

function control(req, res) {
  let body;
  if (req.url === '/__control/health') body = { ok: true };
  else if (req.url === '/__control/stats')
    body = { calls, entries_accepted: accepted, rejected };
  else if (req.url === '/__control/latency') {
    const d = delays.slice().sort((a, b) => a - b);
    const pct = (p) => (d.length ? d[Math.min(d.length - 1, Math.floor(d.length * p))] : null);
    body = { events: d.length, p50_ms: pct(0.5), p99_ms: pct(0.99),
             max_ms: d.length ? d[d.length - 1] : null };
  } else { res.writeHead(404); return res.end(); }
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

http.createServer((req, res) => {
  if (req.url.startsWith('/__control/')) return control(req, res);
  const chunks = [];
  let size = 0;
  req.on('data', (c) => { size += c.length; chunks.push(c); });
  req.on('end', () => {
    const arrived = Date.now();
    calls++;
    if (req.method !== 'POST' || req.headers['x-amz-target'] !== 'AWSEvents.PutEvents')
      return reject(res, 'not a PutEvents call');
    if (size > 256 * 1024) return reject(res, 'request larger than 256 KB');
    let doc;
    try { doc = JSON.parse(Buffer.concat(chunks).toString('utf8')); } catch (e) {
      return reject(res, 'body is not JSON');
    }
    const entries = doc && doc.Entries;
    if (!Array.isArray(entries) || entries.length < 1 || entries.length > 10)
      return reject(res, 'Entries must hold 1..10 entries');
    const out = [];
    for (const e of entries) {
      if (!e || typeof e.Source !== 'string' || typeof e.DetailType !== 'string' ||
          typeof e.Detail !== 'string' || typeof e.EventBusName !== 'string')
        return reject(res, 'an entry lacks Source, DetailType, Detail or EventBusName');
      let detail;
      try { detail = JSON.parse(e.Detail); } catch (x) { return reject(res, 'Detail is not JSON'); }
      const at = Date.parse(detail.occurredAt);
      if (!Number.isNaN(at)) delays.push(arrived - at);
      out.push({ EventId: crypto.randomUUID() });
    }
    accepted += out.length;
    setTimeout(() => {
      res.writeHead(200, { 'Content-Type': 'application/x-amz-json-1.1' });
      res.end(JSON.stringify({ FailedEntryCount: 0, Entries: out }));
    }, delay);
  });
}).listen(port, '127.0.0.1');
