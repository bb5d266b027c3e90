/**
 * The benchmark's client, in a process of its own so the load does not share the gateway's
 * event loop. Reads the body as bytes (autocannon's CLI --input reads text, which would corrupt
 * binary tensors).
 *   node test/bench/load-generator.js '<json options>' <body file>
 * With "sequential": true it sends one request at a time and prints {"p50": ms} measured with a
 * sub-millisecond clock (autocannon rounds latencies to whole ms); otherwise autocannon's result.
 */
const fs = require('node:fs');
const http = require('node:http');
const { performance } = require('node:perf_hooks');
const autocannon = require('autocannon');

const options = JSON.parse(process.argv[2]);
const body = fs.readFileSync(process.argv[3]);

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

/** One POST on the kept-alive connection (node:http: fetch adds ~1 ms of its own per request). */
function post() {
  return new Promise((resolve, reject) => {
    const request = http.request(options.url, { method: 'POST', agent, headers: { ...options.headers, 'content-length': body.length } }, (response) => {
      response.on('data', () => undefined);
      response.on('end', () => (response.statusCode === 200 ? resolve() : reject(new Error(`status ${response.statusCode}`))));
    });
    request.on('socket', (socket) => socket.setNoDelay(true));
    request.on('error', reject);
    request.end(body);
  });
}

async function sequential() {
  const latencies = [];
  const end = performance.now() + options.duration * 1000;
  while (performance.now() < end) {
    const started = performance.now();
    await post();
    latencies.push(performance.now() - started);
  }
  latencies.sort((a, b) => a - b);
  return { p50: latencies[Math.floor(latencies.length / 2)], requests: latencies.length };
}

function fail(error) {
  process.stderr.write(`${error.stack}\n`);
  process.exit(1);
}

if (options.sequential) {
  sequential().then((result) => process.stdout.write(JSON.stringify(result)), fail);
} else {
  autocannon({ ...options, body }, (error, result) => (error ? fail(error) : process.stdout.write(JSON.stringify(result))));
}
