import { Arg, Authorized, Query, Resolver } from 'type-graphql';
import type { GatewayPlugin, PluginContext } from '../../../gateway/plugin-surface';

/** Proves the plugin door: a query, a route, and lifecycle hooks that see the gateway's services. */
export const lifecycle: string[] = [];

@Resolver()
class GreetingResolver {
  private readonly modelCount: () => Promise<number>;

  constructor(context: PluginContext) {
    this.modelCount = async () => (await context.registry.listModels()).length;
  }

  @Authorized('viewer')
  @Query(() => String)
  async greeting(@Arg('name') name: string): Promise<string> {
    return `hello ${name}, ${await this.modelCount()} model(s) registered`;
  }
}

const plugin: GatewayPlugin = {
  name: 'greeting',
  resolvers: [GreetingResolver],
  start(context) {
    lifecycle.push(`start:${context.database.dialect}`);
    context.routes.get('/greeting', (_req, res) => {
      res.json({ greeting: 'hello from a plugin route' });
    });
    return {
      resolverContext: context,
      stop: () => {
        lifecycle.push('stop');
      },
    };
  },
};

export default plugin;
