import { runSoak } from '../bench/soak';

/**
 * The soak run's one-minute version (the ten-minute one is `npm run bench:soak`): 80 % of the
 * measured maximum with a 100 % shadow. Every request is answered 2xx and counted exactly once,
 * by the Prometheus counters and by the per-minute rollups, and every mirrored request is either
 * run or counted as dropped. Timing figures are printed, not asserted: the machine may be busy.
 */
test('a minute at 80 % of the maximum with a shadow: no errors, no lost metrics', async () => {
  const report = await runSoak({ probeSeconds: 3, loadSeconds: 45, windowSeconds: 15, loadFraction: 0.8, connections: 4 });
  console.log(
    `soak (1 min): max ${report.maxThroughput.toFixed(0)} req/s, load ${report.rate} req/s, ` +
      report.windows.map((w) => `[p50 ${w.p50Ms} ms, p99 ${w.p99Ms} ms, rss ${w.rssMiB.toFixed(0)} MiB]`).join(' '),
  );
  expect(report.windows.map((w) => w.failures)).toEqual(report.windows.map(() => 0));
  expect(report.windows.reduce((n, w) => n + w.requests, 0)).toBe(report.sent);
  expect(report.counted).toEqual({
    primary: report.sent,
    rollupRequests: report.sent,
    shadow: report.sent - report.counted.shadowDropped,
    shadowDropped: report.counted.shadowDropped,
    rollupShadowRequests: report.counted.shadow,
    errors: 0,
  });
}, 120_000);
