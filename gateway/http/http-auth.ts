import type { NextFunction, Request, Response } from 'express';
import { roleAllows, type Principal, type Role } from '../auth/roles';
import type { TokenService } from '../auth/token-service';
import { GatewayError } from '../errors';

const AUTH_DISABLED: Principal = { tokenId: null, name: 'anonymous (auth disabled)', role: 'admin' };

/** One place decides who a request is, for GraphQL and for plain HTTP routes alike. */
export class RequestAuthenticator {
  constructor(
    private readonly tokens: TokenService,
    private readonly enabled: boolean,
  ) {}

  async principalOf(req: Request): Promise<Principal | undefined> {
    return this.principalOfAuthorization(req.headers.authorization);
  }

  /** The same decision from an Authorization value alone (WebSocket connection parameters). */
  async principalOfAuthorization(authorization: string | undefined): Promise<Principal | undefined> {
    if (!this.enabled) return AUTH_DISABLED;
    return this.tokens.authenticate(authorization);
  }

  /** The caller, when it may act as `role`; UNAUTHENTICATED without a valid token, FORBIDDEN with the wrong role. */
  async authorize(authorization: string | undefined, role: Role): Promise<Principal> {
    const principal = await this.principalOfAuthorization(authorization);
    if (!principal) throw new GatewayError('UNAUTHENTICATED', 'this endpoint needs a bearer token (Authorization: Bearer <token>)');
    if (!roleAllows(principal.role, role)) {
      throw new GatewayError('FORBIDDEN', `this endpoint needs the ${role} role; token "${principal.name}" has ${principal.role}`);
    }
    return principal;
  }

  /** Express middleware: 401 without a valid token, 403 with the wrong role. */
  require(role: Role) {
    return async (req: Request, res: Response, next: NextFunction) => {
      try {
        res.locals.principal = await this.authorize(req.headers.authorization, role);
        next();
      } catch (error) {
        next(error);
      }
    };
  }
}
