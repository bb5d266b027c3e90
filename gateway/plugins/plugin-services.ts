/**
 * Services plugins offer each other by name, so one plugin can use another's feature without
 * importing its code (fimaq's `quantizeModel(rollout:)` starts a rollout through the rollouts
 * plugin's starter). The contract, an interface and its name, lives where both may import it
 * (schema/ for GraphQL-shaped contracts). Looked up when used, so plugin order does not matter.
 */
export class PluginServices {
  private readonly services = new Map<string, unknown>();

  provide<T>(name: string, service: T): () => void {
    if (this.services.has(name)) throw new Error(`a plugin already provides the service "${name}"`);
    this.services.set(name, service);
    return () => this.services.delete(name);
  }

  find<T>(name: string): T | undefined {
    return this.services.get(name) as T | undefined;
  }
}
