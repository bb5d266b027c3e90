/**
 * Errors a user can act on. Each carries a stable code that GraphQL puts in `extensions.code`
 * and the HTTP layer maps to a status, so one throw site serves both planes. The status belongs
 * to the code alone: a new kind of failure with its own status is a new code, never an override.
 */
export type ErrorCode =
  | 'BAD_USER_INPUT'
  | 'INVALID_MODEL'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'PAYLOAD_TOO_LARGE'
  | 'TOO_MANY_REQUESTS'
  | 'VARIANT_FAILED'
  | 'UNAVAILABLE';

const HTTP_STATUS: Record<ErrorCode, number> = {
  BAD_USER_INPUT: 400,
  INVALID_MODEL: 400,
  NOT_FOUND: 404,
  CONFLICT: 409,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  PAYLOAD_TOO_LARGE: 413,
  TOO_MANY_REQUESTS: 429,
  // A variant's session failed to load or run: the server's fault, not the caller's.
  VARIANT_FAILED: 500,
  UNAVAILABLE: 503,
};

export class GatewayError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'GatewayError';
  }

  get httpStatus(): number {
    return HTTP_STATUS[this.code];
  }
}

/** Refused for now (a full queue, a spent rate limit): answered 429 with `Retry-After`. */
export class RetryLaterError extends GatewayError {
  constructor(
    message: string,
    /** Whole seconds after which a retry has a fair chance; sent as `Retry-After`. */
    readonly retryAfterSeconds: number,
  ) {
    super('TOO_MANY_REQUESTS', message);
  }
}

export const badInput = (message: string) => new GatewayError('BAD_USER_INPUT', message);
export const notFound = (message: string) => new GatewayError('NOT_FOUND', message);
export const conflict = (message: string) => new GatewayError('CONFLICT', message);
export const invalidModel = (message: string) => new GatewayError('INVALID_MODEL', message);
