// lambda-local's API, measured in this one Node.js process; prints one JSON line.
//
//   node lambda_local.js latency CALLS WARMUP path|func
//   node lambda_local.js throughput CALLS IN_FLIGHT
//   node lambda_local.js coldstart
//
// "path" hands lambda-local the handler's file (it re-requires it on every call, as
// documented); "func" hands it the module required once (its fastest use).  Every
// answer is checked.  NODE_PATH points at the lambda-local installed by bench/nodepeer.py.
"use strict";
const path = require("path");
const lambdaLocal = require("lambda-local");

const HANDLER = path.join(__dirname, "..", "functions", "add.js");
const EVENT = { value1: 1, value2: 2 };
const ANSWER = 3;
const [mode, ...args] = process.argv.slice(2);

function options(use) {
  const base = { event: EVENT, lambdaHandler: "handler", timeoutMs: 3000, verboseLevel: 0 };
  return use === "func" ? { ...base, lambdaFunc: require(HANDLER) } : { ...base, lambdaPath: HANDLER };
}

async function call(opts) {
  const answer = await lambdaLocal.execute(opts);
  if (answer !== ANSWER) throw new Error(`wrong answer: ${answer}`);
}

async function latency(calls, warmup, use) {
  const opts = options(use);
  for (let i = 0; i < warmup; i++) await call(opts);
  const samples = [];
  for (let i = 0; i < calls; i++) {
    const started = process.hrtime.bigint();
    await call(opts);
    samples.push(Number(process.hrtime.bigint() - started));
  }
  return { samples_ns: samples };
}

async function throughput(calls, inFlight) {
  const opts = options("func");
  async function run(count) {
    let issued = 0;
    const caller = async () => {
      while (issued < count) {
        issued++;
        await call(opts);
      }
    };
    await Promise.all(Array.from({ length: inFlight }, caller));
  }
  await run(Math.min(calls, 1000)); // warm-up
  const started = process.hrtime.bigint();
  await run(calls);
  return { elapsed_ns: Number(process.hrtime.bigint() - started), calls };
}

async function main() {
  let out;
  if (mode === "latency") out = await latency(+args[0], +args[1], args[2]);
  else if (mode === "throughput") out = await throughput(+args[0], +args[1]);
  else if (mode === "coldstart") { await call(options("func")); out = { answered: true }; }
  else throw new Error(`unknown mode ${mode}`);
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((err) => { console.error(err); process.exit(1); });
