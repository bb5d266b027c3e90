import 'reflect-metadata';
import { ConfigError, loadConfig } from './config/config';
import { startGateway } from './gateway';
import { createLogger } from './logger';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`configuration error: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const logger = createLogger(config.logLevel);
  const gateway = await startGateway({ config, logger });

  // Handlers go in before "ready" is printed: whoever waits for that line may signal at once.
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    gateway.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));

  if (gateway.initialAdminToken) {
    // Printed once, to the terminal and never into the JSON log stream: only the hash is stored,
    // so this is the operator's only chance to copy it.
    const rule = '='.repeat(72);
    process.stderr.write(
      `\n${rule}\n  First start: created an admin token. Store it now; it will not be shown again.\n\n    ${gateway.initialAdminToken}\n\n  Send it as "Authorization: Bearer <token>".\n${rule}\n\n`,
    );
  }
  process.stdout.write(`gateway ready at ${gateway.url} (GraphQL: ${gateway.url}/graphql)\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`gateway failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
