import { GatewayError, RetryLaterError } from '../errors';

/**
 * The data plane's own failure kinds. They extend GatewayError so the shared error middleware
 * renders them as `{ "error": "..." }` with their code's status.
 */

/** A variant's queue is full. */
export class OverloadedError extends RetryLaterError {}

/** The variant's session could not load or failed while running: a server fault, not the caller's. */
export class VariantFailedError extends GatewayError {
  constructor(message: string) {
    super('VARIANT_FAILED', message);
  }
}

/** The HTTP status a data-plane failure answers: a user error's own, else 500. */
export const statusOf = (error: unknown): number => (error instanceof GatewayError ? error.httpStatus : 500);
