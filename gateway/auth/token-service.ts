import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { AuditLog } from '../audit/audit-log';
import { nowIso, toDate, toOptionalDate } from '../db/codec';
import type { Database } from '../db/schema';
import { badInput, GatewayError, notFound } from '../errors';
import { isRole, type Principal, type Role } from './roles';

export interface ApiTokenInfo {
  id: string;
  name: string;
  role: Role;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

const TOKEN_PREFIX = 'vgw_';
/** Successful look-ups are cached briefly: the data plane authenticates every request. */
const CACHE_TTL_MS = 5000;

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** Bearer tokens: only their SHA-256 is stored; the plain token is shown once, at creation. */
export class TokenService {
  private readonly cache = new Map<string, { principal: Principal; expires: number }>();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly audit: AuditLog,
  ) {}

  /**
   * Makes sure an admin can get in. With `configuredToken` that token is registered (once);
   * without it, the first start of an empty database creates one and returns it for printing.
   */
  async bootstrapAdmin(configuredToken: string | undefined): Promise<string | undefined> {
    if (configuredToken) {
      const hash = hashToken(configuredToken);
      const existing = await this.db.selectFrom('api_tokens').select('id').where('token_hash', '=', hash).executeTakeFirst();
      if (!existing) await this.insert('admin (GATEWAY_ADMIN_TOKEN)', 'admin', hash, 'system');
      return undefined;
    }
    const any = await this.db.selectFrom('api_tokens').select('id').limit(1).executeTakeFirst();
    if (any) return undefined;
    const { token } = await this.create('initial admin', 'admin', 'system');
    return token;
  }

  async create(name: string, role: Role, actor: string): Promise<{ token: string; info: ApiTokenInfo }> {
    if (!name.trim() || name.length > 100) throw badInput('token name must be 1-100 characters');
    if (!isRole(role)) throw badInput(`role must be admin, viewer or inference, got "${role}"`);
    const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const info = await this.insert(name.trim(), role, hashToken(token), actor);
    return { token, info };
  }

  async revoke(id: string, actor: string): Promise<ApiTokenInfo> {
    const row = await this.db.selectFrom('api_tokens').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw notFound(`no API token with id ${id}`);
    if (!row.revoked_at) {
      await this.db.transaction().execute(async (tx) => {
        await tx.updateTable('api_tokens').set({ revoked_at: nowIso() }).where('id', '=', id).execute();
        await this.audit.record(
          { actor, action: 'token.revoke', subjectType: 'api_token', subjectId: id, details: { name: row.name } },
          tx,
        );
      });
      this.cache.clear();
    }
    return (await this.list()).find((t) => t.id === id) as ApiTokenInfo;
  }

  async list(): Promise<ApiTokenInfo[]> {
    const rows = await this.db.selectFrom('api_tokens').selectAll().orderBy('created_at').execute();
    return rows.map((row) => ({
      id: row.id,
      name: row.name,
      role: row.role as Role,
      createdAt: toDate(row.created_at),
      lastUsedAt: toOptionalDate(row.last_used_at),
      revokedAt: toOptionalDate(row.revoked_at),
    }));
  }

  /** The principal for an `Authorization` header value; undefined when there is none. */
  async authenticate(authorization: string | undefined): Promise<Principal | undefined> {
    if (!authorization) return undefined;
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!match) throw new GatewayError('UNAUTHENTICATED', 'the Authorization header must be "Bearer <token>"');
    const hash = hashToken(match[1]);
    const cached = this.cache.get(hash);
    if (cached && cached.expires > Date.now()) return cached.principal;
    const row = await this.db
      .selectFrom('api_tokens')
      .select(['id', 'name', 'role', 'revoked_at'])
      .where('token_hash', '=', hash)
      .executeTakeFirst();
    if (!row || row.revoked_at) throw new GatewayError('UNAUTHENTICATED', 'the bearer token is unknown or revoked');
    const principal: Principal = { tokenId: row.id, name: row.name, role: row.role as Role };
    this.cache.set(hash, { principal, expires: Date.now() + CACHE_TTL_MS });
    await this.db.updateTable('api_tokens').set({ last_used_at: nowIso() }).where('id', '=', row.id).execute();
    return principal;
  }

  private async insert(name: string, role: Role, tokenHash: string, actor: string): Promise<ApiTokenInfo> {
    const id = randomUUID();
    const createdAt = nowIso();
    await this.db.transaction().execute(async (tx) => {
      await tx
        .insertInto('api_tokens')
        .values({ id, name, role, token_hash: tokenHash, created_at: createdAt, last_used_at: null, revoked_at: null })
        .execute();
      await this.audit.record({ actor, action: 'token.create', subjectType: 'api_token', subjectId: id, details: { name, role } }, tx);
    });
    return { id, name, role, createdAt: new Date(createdAt), lastUsedAt: null, revokedAt: null };
  }
}
