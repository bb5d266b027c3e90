import { GatewayError } from '../errors';

/**
 * The data plane's own failure kinds. They extend GatewayError so the shared error middleware
 * renders them as `{ "error": "..." }` with their code's status.
 */
export class OverloadedError extends GatewayError {
  constructor(
    message: string,
    /** Seconds after which a retry has a fair chance; sent as `Retry-After`. */
    readonly retryAfterSeconds: number,
  ) {
    super('TOO_MANY_REQUESTS', message);
  }
}

/** The variant's session could not load or failed while running: a server fault, not the caller's. */
export class VariantFailedError extends GatewayError {
  constructor(message: string) {
    super('VARIANT_FAILED', message);
  }
}

/** The HTTP status a data-plane failure answers: a user error's own, else 500. */
export const statusOf = (error: unknown): number => (error instanceof GatewayError ? error.httpStatus : 500);
