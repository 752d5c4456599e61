// graphile-worker on the same PostgreSQL, with the protocol `slipway bench jobs` uses for its own
// engine: drain a backlog of JOBS no-op jobs with CONCURRENCY workers (throughput), then enqueue
// LATENCY_JOBS jobs one at a time to idle workers (enqueue → start latency). Prints one JSON line.
import { Logger, makeWorkerUtils, run } from "graphile-worker";

const connectionString = process.env.DATABASE_URL;
const jobs = Number(process.env.JOBS ?? 5000);
const concurrency = Number(process.env.CONCURRENCY ?? 16);
const latencyJobs = Number(process.env.LATENCY_JOBS ?? 200);
const logger = new Logger(() => () => {});

const utils = await makeWorkerUtils({ connectionString, logger });
await utils.migrate();
// add_jobs (one statement per 10,000 jobs) rather than add_job per row, which takes minutes
// for 500,000 jobs. The backlog is queued before the clock starts either way.
await utils.withPgClient(async (client) => {
  for (let queued = 0; queued < jobs; queued += 10000) {
    await client.query(
      `SELECT count(*) FROM graphile_worker.add_jobs(
         (SELECT array_agg(ROW('noop', '{}'::json, NULL, NULL, NULL, NULL, NULL, NULL)::graphile_worker.job_spec)
          FROM generate_series(1, $1)))`,
      [Math.min(10000, jobs - queued)],
    );
  }
  // Settled like every engine's backlog (see `SETTLE` in server/bench/jobs.rs).
  await client.query("VACUUM (ANALYZE)");
  await client.query("CHECKPOINT");
});

let drained = 0;
let onDrained;
const allDrained = new Promise((resolve) => { onDrained = resolve; });
let measuring = false;
const latencies = [];
let onStarted = null;

const taskList = {
  noop: async (_payload, helpers) => {
    if (measuring) {
      latencies.push(Date.now() - new Date(helpers.job.created_at).getTime());
      onStarted?.();
    } else if (++drained === jobs) {
      onDrained();
    }
  },
};

const start = performance.now();
const runner = await run({ connectionString, concurrency, noHandleSignals: true, pollInterval: 1000, taskList, logger });
await allDrained;
const seconds = (performance.now() - start) / 1000;

measuring = true;
for (let i = 0; i < latencyJobs; i++) {
  const started = new Promise((resolve) => { onStarted = resolve; });
  await utils.addJob("noop", {});
  await started;
}
await runner.stop();
await utils.release();

latencies.sort((a, b) => a - b);
const pick = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
console.log(JSON.stringify({ jobs_per_second: jobs / seconds, p50_ms: pick(0.5), p99_ms: pick(0.99) }));
