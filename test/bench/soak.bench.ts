/**
 * The 10-minute soak (`npm run bench:soak`; not part of `npm test`, whose one-minute version is
 * test/serving/soak.test.ts). Loopback only; bounded: it stops after SOAK_MINUTES (default 10).
 * Prints each minute's p50, p99 and RSS, then the RSS growth and p99 drift from the first minute
 * to the last, and whether the gateway counted every request; exits 1 when it did not, or on errors.
 */
import { runSoak } from './soak';

async function main(): Promise<void> {
  const minutes = Number(process.env.SOAK_MINUTES ?? 10);
  if (!(minutes >= 1 && minutes <= 60)) throw new Error('SOAK_MINUTES must be 1..60');
  const out = (line: string) => process.stdout.write(`${line}\n`);
  out(`soak: ${minutes} min at 80 % of the measured maximum, 100 % shadow, 8 connections, loopback`);
  const report = await runSoak({
    probeSeconds: 10,
    loadSeconds: minutes * 60,
    windowSeconds: 60,
    loadFraction: 0.8,
    connections: 8,
    onWindow: (w) => out(`  minute ${w.index + 1}: ${w.requests} requests, ${w.failures} failed, p50 ${w.p50Ms} ms, p99 ${w.p99Ms} ms, rss ${w.rssMiB.toFixed(1)} MiB`),
  });
  const [first, last] = [report.windows[0], report.windows[report.windows.length - 1]];
  out(`max throughput ${report.maxThroughput.toFixed(0)} req/s; load ${report.rate} req/s`);
  out(`rss growth first -> last minute: ${(last.rssMiB - first.rssMiB).toFixed(1)} MiB (${((last.rssMiB / first.rssMiB - 1) * 100).toFixed(1)} %)`);
  out(`p99 drift first -> last minute: ${first.p99Ms} ms -> ${last.p99Ms} ms (x${(last.p99Ms / Math.max(1, first.p99Ms)).toFixed(2)})`);
  out(`sent ${report.sent}; counted ${JSON.stringify(report.counted)}`);
  const failures = report.windows.reduce((n, w) => n + w.failures, 0);
  const { counted, sent } = report;
  const exact = counted.primary === sent && counted.rollupRequests === sent && counted.shadow + counted.shadowDropped === sent && counted.rollupShadowRequests === counted.shadow && counted.errors === 0;
  out(exact && failures === 0 ? 'every request answered and counted once' : `LOST OR FAILED: ${failures} failures, counts ${exact ? 'exact' : 'NOT exact'}`);
  if (!exact || failures > 0) process.exitCode = 1;
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
