import type { NextFunction, Request, Response } from 'express';
import { RetryLaterError } from '../errors';
import type { Principal } from './roles';

/** A token bucket's shape: `perSecond` requests sustained, up to `burst` at once; perSecond 0 means no limit. */
export interface RateLimit {
  perSecond: number;
  burst: number;
}

/** The planes limited separately: a token's inference traffic does not spend its control-plane budget. */
export type RateLimitedPlane = 'inference' | 'graphql';

/** Buckets kept before idle (full) ones are dropped, so a stream of new callers cannot grow memory without bound. */
const MAX_IDLE_BUCKETS = 10_000;

interface Bucket {
  tokens: number;
  at: number;
}

/** One token bucket per caller key, refilled continuously. */
export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly limit: RateLimit,
    /** Milliseconds on a monotonic clock. */
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Takes one token for `key`: 0 when granted, else the seconds until one is available. */
  take(key: string): number {
    if (this.limit.perSecond <= 0) return 0;
    const now = this.now();
    const bucket = this.buckets.get(key) ?? this.added(key, now);
    bucket.tokens = Math.min(this.limit.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.limit.perSecond);
    bucket.at = now;
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return (1 - bucket.tokens) / this.limit.perSecond;
  }

  private added(key: string, now: number): Bucket {
    if (this.buckets.size >= MAX_IDLE_BUCKETS) this.dropFull(now);
    const bucket = { tokens: this.limit.burst, at: now };
    this.buckets.set(key, bucket);
    return bucket;
  }

  /** A bucket that has refilled is the same as no bucket. */
  private dropFull(now: number): void {
    for (const [key, bucket] of this.buckets) {
      if (bucket.tokens + ((now - bucket.at) / 1000) * this.limit.perSecond >= this.limit.burst) this.buckets.delete(key);
    }
  }
}

/**
 * Per-token request rate limits of the data plane and the GraphQL control plane. A request
 * without a token (GraphQL's anonymous callers, everyone when auth is disabled) is limited by
 * its client address.
 */
export class RateLimiter {
  private readonly planes: Record<RateLimitedPlane, TokenBuckets>;

  constructor(limits: Record<RateLimitedPlane, RateLimit>, now?: () => number) {
    this.planes = { inference: new TokenBuckets(limits.inference, now), graphql: new TokenBuckets(limits.graphql, now) };
  }

  /** Throws TOO_MANY_REQUESTS (429, Retry-After) once the caller's bucket on `plane` is empty. */
  check(plane: RateLimitedPlane, principal: Principal | undefined, clientAddress: string | undefined): void {
    const wait = this.planes[plane].take(principal?.tokenId ? `token:${principal.tokenId}` : `address:${clientAddress ?? 'unknown'}`);
    if (wait > 0) {
      const seconds = Math.max(1, Math.ceil(wait));
      throw new RetryLaterError(`rate limit of the ${plane} plane reached for this ${principal?.tokenId ? 'token' : 'client'}; retry after ${seconds} s`, seconds);
    }
  }

  /** Express middleware for routes behind `RequestAuthenticator.require` (which leaves the principal in res.locals). */
  middleware(plane: RateLimitedPlane) {
    return (req: Request, res: Response, next: NextFunction) => {
      try {
        this.check(plane, res.locals.principal as Principal | undefined, req.socket.remoteAddress);
        next();
      } catch (error) {
        next(error);
      }
    };
  }
}
