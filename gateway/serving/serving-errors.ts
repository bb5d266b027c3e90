import { GatewayError } from '../errors';

/**
 * The data plane's own failure kinds. They extend GatewayError so the shared error middleware
 * renders them as `{ "error": "..." }`; only their HTTP status differs from the code's default.
 */
export class OverloadedError extends GatewayError {
  constructor(
    message: string,
    /** Seconds after which a retry has a fair chance; sent as `Retry-After`. */
    readonly retryAfterSeconds: number,
  ) {
    super('UNAVAILABLE', message);
  }

  override get httpStatus(): number {
    return 429;
  }
}

/** The variant's session could not load or failed while running: a server fault, not the caller's. */
export class VariantFailedError extends GatewayError {
  constructor(message: string) {
    super('UNAVAILABLE', message);
  }

  override get httpStatus(): number {
    return 500;
  }
}

/** The HTTP status a data-plane failure answers: a user error's own, else 500. */
export const statusOf = (error: unknown): number => (error instanceof GatewayError ? error.httpStatus : 500);
