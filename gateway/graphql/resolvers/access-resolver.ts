import { Arg, Authorized, Ctx, ID, Int, Mutation, Query, Resolver } from 'type-graphql';
import { ApiToken, AuditEntry, CreatedApiToken, RoleEnum } from '../../../schema/access';
import type { AuditLog } from '../../audit/audit-log';
import type { TokenService } from '../../auth/token-service';
import type { PluginContext } from '../../plugins/plugin-api';
import { actorOf, type GraphQLContext } from '../graphql-context';

@Resolver()
export class AccessResolver {
  private readonly tokens: TokenService;
  private readonly audit: AuditLog;

  constructor(context: PluginContext) {
    this.tokens = context.tokens;
    this.audit = context.audit;
  }

  @Authorized('admin')
  @Query(() => [ApiToken])
  async apiTokens(): Promise<ApiToken[]> {
    return (await this.tokens.list()) as ApiToken[];
  }

  @Authorized('admin')
  @Mutation(() => CreatedApiToken, { description: 'Creates a bearer token; the token itself is returned only here.' })
  async createApiToken(
    @Arg('name') name: string,
    @Arg('role', () => RoleEnum) role: RoleEnum,
    @Ctx() context: GraphQLContext,
  ): Promise<CreatedApiToken> {
    const { token, info } = await this.tokens.create(name, role, actorOf(context).name);
    return { token, info: info as ApiToken };
  }

  @Authorized('admin')
  @Mutation(() => ApiToken)
  async revokeApiToken(@Arg('id', () => ID) id: string, @Ctx() context: GraphQLContext): Promise<ApiToken> {
    return (await this.tokens.revoke(id, actorOf(context).name)) as ApiToken;
  }

  @Authorized('admin')
  @Query(() => [AuditEntry], { description: 'Latest changes first.' })
  async auditLog(
    @Arg('subjectId', () => ID, { nullable: true }) subjectId: string | undefined,
    @Arg('limit', () => Int, { defaultValue: 100 }) limit: number,
  ): Promise<AuditEntry[]> {
    return this.audit.list({ subjectId, limit: Math.min(Math.max(limit, 1), 1000) });
  }
}
