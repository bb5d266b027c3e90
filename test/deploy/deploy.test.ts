import fs from 'node:fs';
import path from 'node:path';
import Ajv from 'ajv';
import yaml from 'js-yaml';
import { parseDockerfile, stagesOf, type Stage } from './dockerfile';

const REPO = path.resolve(__dirname, '..', '..');
const DEPLOY = path.join(REPO, 'deploy');
const KUBERNETES = path.join(DEPLOY, 'kubernetes');

/** Every environment variable the README's configuration table documents. */
const DOCUMENTED_VARIABLES = new Set([...fs.readFileSync(path.join(REPO, 'README.md'), 'utf8').matchAll(/^\| `([A-Z][A-Z0-9_]+)` \|/gm)].map((m) => m[1]));

// ---------------------------------------------------------------- Kubernetes manifests

interface Container {
  name: string;
  image: string;
  env?: Array<{ name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }>;
  ports?: Array<{ name?: string; containerPort: number }>;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  readinessProbe?: { httpGet?: { port: string | number } };
  livenessProbe?: { httpGet?: { port: string | number } };
  volumeMounts?: Array<{ name: string }>;
}
interface PodTemplate {
  metadata?: { labels?: Record<string, string> };
  spec: { containers: Container[]; volumes?: Array<{ name: string; persistentVolumeClaim?: { claimName: string }; configMap?: { name: string } }>; securityContext?: { runAsNonRoot?: boolean } };
}
interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec?: {
    replicas?: number;
    selector?: { matchLabels?: Record<string, string> } & Record<string, string>;
    template?: PodTemplate;
    serviceName?: string;
    clusterIP?: string;
    ports?: Array<{ port: number; targetPort?: string | number }>;
    volumeClaimTemplates?: Array<{ metadata: { name: string } }>;
    scaleTargetRef?: { kind: string; name: string };
    minReplicas?: number;
    maxReplicas?: number;
  };
  data?: Record<string, string>;
}

function loadManifests(): Array<{ file: string; manifest: Manifest }> {
  return fs
    .readdirSync(KUBERNETES)
    .filter((f) => f.endsWith('.yaml'))
    .flatMap((file) => yaml.loadAll(fs.readFileSync(path.join(KUBERNETES, file), 'utf8')).map((manifest) => ({ file, manifest: manifest as Manifest })));
}

const ajv = new Ajv({ allErrors: true, strict: true });
const validate = ajv.compile(JSON.parse(fs.readFileSync(path.join(KUBERNETES, 'schemas', 'kubernetes-subset.schema.json'), 'utf8')) as object);
const schemaErrors = (manifest: unknown) => (validate(manifest) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`));

const selects = (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined) =>
  selector !== undefined && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels?.[k] === v);

describe('Kubernetes manifests (deploy/kubernetes)', () => {
  const manifests = loadManifests();
  const all = manifests.map((m) => m.manifest);
  const workloads = all.filter((m) => m.kind === 'Deployment' || m.kind === 'StatefulSet');
  const byKindName = (kind: string, name: string) => all.find((m) => m.kind === kind && m.metadata.name === name);

  test('every object is valid against the shipped Kubernetes schemas', () => {
    expect(manifests.length).toBeGreaterThanOrEqual(10);
    for (const { file, manifest } of manifests) expect([file, manifest.kind, manifest.metadata?.name, schemaErrors(manifest)]).toEqual([file, manifest.kind, manifest.metadata?.name, []]);
  });

  test('the schemas are strict: a misspelt field, a bad quantity or a missing selector is an error', () => {
    const gateway = structuredClone(byKindName('Deployment', 'vit-gateway')!) as unknown as { spec: Record<string, unknown> & { template: PodTemplate } };
    expect(schemaErrors({ ...gateway, spec: { ...gateway.spec, replica: 2 } })).not.toEqual([]);
    const container = gateway.spec.template.spec.containers[0];
    container.resources = { requests: { memory: 'two gigabytes' } };
    expect(schemaErrors(gateway)).not.toEqual([]);
    const { selector: _selector, ...withoutSelector } = gateway.spec;
    expect(schemaErrors({ ...gateway, spec: withoutSelector })).not.toEqual([]);
    expect(schemaErrors({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'x' } })).not.toEqual([]);
  });

  test('the gateway: a Deployment of several replicas, a Service and an HPA on it, probes on the health routes', () => {
    const deployment = byKindName('Deployment', 'vit-gateway')!;
    expect(deployment.spec!.replicas).toBeGreaterThanOrEqual(2);
    const container = deployment.spec!.template!.spec.containers[0];
    expect(container.readinessProbe?.httpGet).toMatchObject({ path: '/v2/health/ready' });
    expect(container.livenessProbe?.httpGet).toMatchObject({ path: '/v2/health/live' });
    const env = new Map(container.env!.map((e) => [e.name, e]));
    expect([...env.keys()]).toEqual(expect.arrayContaining(['DATABASE_URL', 'NATS_URL', 'GATEWAY_ADMIN_TOKEN']));
    // Secrets come from a Secret, never inline.
    for (const name of ['DATABASE_URL', 'GATEWAY_ADMIN_TOKEN']) expect(env.get(name)).toEqual({ name, valueFrom: { secretKeyRef: expect.any(Object) } });
    const hpa = all.find((m) => m.kind === 'HorizontalPodAutoscaler')!;
    expect(hpa.spec!.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: 'vit-gateway' });
    expect(hpa.spec!.minReplicas).toBeGreaterThanOrEqual(2);
    // Replicas share one artifact volume.
    const claim = deployment.spec!.template!.spec.volumes!.find((v) => v.persistentVolumeClaim)!.persistentVolumeClaim!.claimName;
    expect((byKindName('PersistentVolumeClaim', claim) as unknown as { spec: { accessModes: string[] } }).spec.accessModes).toEqual(['ReadWriteMany']);
  });

  test('the worker requests a GPU; NATS is a 3-node JetStream cluster whose routes name each node; PostgreSQL is there', () => {
    const worker = all.find((m) => m.kind === 'Deployment' && m.spec!.template!.spec.containers[0].image.includes('worker-gpu'))!;
    const resources = worker.spec!.template!.spec.containers[0].resources!;
    expect(resources.limits!['nvidia.com/gpu']).toBe('1');
    const nats = byKindName('StatefulSet', 'nats')!;
    expect(nats.spec!.replicas).toBe(3);
    const config = byKindName('ConfigMap', 'nats-config')!.data!['nats.conf'];
    expect(config).toMatch(/jetstream\s*\{/);
    for (let i = 0; i < 3; i++) expect(config).toContain(`nats://nats-${i}.${nats.spec!.serviceName}:6222`);
    expect(byKindName('Service', nats.spec!.serviceName!)!.spec!.clusterIP).toBe('None');
    expect(byKindName('StatefulSet', 'postgres')).toBeDefined();
    // Gateway and workers create the job streams with a copy on each node.
    for (const workload of workloads) {
      const env = new Map((workload.spec!.template!.spec.containers[0].env ?? []).map((e) => [e.name, e.value]));
      if (env.has('NATS_URL')) expect([workload.metadata.name, env.get('FIMAQ_NATS_REPLICAS')]).toEqual([workload.metadata.name, String(nats.spec!.replicas)]);
    }
  });

  test('references hold: selectors, services, ports, volumes, secrets; pods run as non-root; env variables are documented', () => {
    const secretNames = new Set<string>();
    for (const workload of workloads) {
      const template = workload.spec!.template!;
      expect([workload.metadata.name, selects(workload.spec!.selector!.matchLabels, template.metadata?.labels)]).toEqual([workload.metadata.name, true]);
      expect([workload.metadata.name, template.spec.securityContext?.runAsNonRoot]).toEqual([workload.metadata.name, true]);
      const volumes = new Set([...(template.spec.volumes ?? []).map((v) => v.name), ...(workload.spec!.volumeClaimTemplates ?? []).map((v) => v.metadata.name)]);
      for (const volume of template.spec.volumes ?? []) {
        if (volume.persistentVolumeClaim) expect(byKindName('PersistentVolumeClaim', volume.persistentVolumeClaim.claimName)).toBeDefined();
        if (volume.configMap) expect(byKindName('ConfigMap', volume.configMap.name)).toBeDefined();
      }
      for (const container of template.spec.containers) {
        for (const mount of container.volumeMounts ?? []) expect([container.name, mount.name, volumes.has(mount.name)]).toEqual([container.name, mount.name, true]);
        const portNames = new Set((container.ports ?? []).map((p) => p.name));
        for (const probe of [container.readinessProbe, container.livenessProbe]) {
          if (typeof probe?.httpGet?.port === 'string') expect(portNames.has(probe.httpGet.port)).toBe(true);
        }
        for (const variable of container.env ?? []) {
          if (variable.valueFrom?.secretKeyRef) secretNames.add(variable.valueFrom.secretKeyRef.name);
          // The images' own variables (ours) must be in the README; third-party images' are theirs.
          if (container.image.startsWith('vit-gateway')) expect([variable.name, DOCUMENTED_VARIABLES.has(variable.name)]).toEqual([variable.name, true]);
        }
      }
    }
    // One Secret, created by the operator (deploy/kubernetes/README.md says how).
    expect([...secretNames]).toEqual(['vit-gateway']);
    for (const service of all.filter((m) => m.kind === 'Service')) {
      const selected = workloads.filter((w) => selects(service.spec!.selector as Record<string, string>, w.spec!.template!.metadata?.labels));
      expect([service.metadata.name, selected.length > 0]).toEqual([service.metadata.name, true]);
      for (const port of service.spec!.ports!) {
        if (typeof port.targetPort !== 'string') continue;
        const named = selected.some((w) => w.spec!.template!.spec.containers.some((c) => c.ports?.some((p) => p.name === port.targetPort)));
        expect([service.metadata.name, port.targetPort, named]).toEqual([service.metadata.name, port.targetPort, true]);
      }
    }
    for (const set of all.filter((m) => m.kind === 'StatefulSet')) expect(byKindName('Service', set.spec!.serviceName!)).toBeDefined();
  });
});

// ---------------------------------------------------------------- Dockerfiles

/** Paths the build context leaves out (.dockerignore at the repository root). */
const IGNORED = fs
  .readFileSync(path.join(REPO, '.dockerignore'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));
const ignored = (source: string) => IGNORED.some((pattern) => !pattern.includes('*') && (source === pattern || source.startsWith(`${pattern}/`)));

const DOCKERFILES = ['gateway.Dockerfile', 'worker.Dockerfile', 'worker-gpu.Dockerfile'];

const stagesOfFile = (file: string): Stage[] => stagesOf(parseDockerfile(fs.readFileSync(path.join(DEPLOY, 'docker', file), 'utf8')));

describe.each(DOCKERFILES)('deploy/docker/%s', (file) => {
  const stages = stagesOfFile(file);
  const final = stages[stages.length - 1];
  const finalOf = (keyword: string) => final.instructions.filter((i) => i.keyword === keyword);

  test('is multi-stage: the final stage copies the build from an earlier stage, by name', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const names = new Set(stages.slice(0, -1).map((s) => s.name));
    const fromStages = stages.flatMap((s) => s.instructions).filter((i) => i.keyword === 'COPY' && i.flags.from !== undefined);
    expect(fromStages.length).toBeGreaterThan(0);
    for (const copy of fromStages) expect([copy.line, names.has(copy.flags.from)]).toEqual([copy.line, true]);
    expect(finalOf('COPY').some((c) => c.flags.from !== undefined && c.args.includes('dist'))).toBe(true);
    // Base images are pinned to a version, never `latest` or bare.
    for (const stage of stages) expect(stage.base).toMatch(/^[^:]+:(?!latest$)[\w.-]+$/);
  });

  test('copies only what exists in the repository and is not left out of the build context', () => {
    for (const stage of stages) {
      for (const copy of stage.instructions.filter((i) => i.keyword === 'COPY' && i.flags.from === undefined)) {
        for (const source of copy.args.slice(0, -1)) {
          expect([copy.line, source, fs.existsSync(path.join(REPO, source)), ignored(source)]).toEqual([copy.line, source, true, false]);
        }
      }
      expect(stage.instructions.filter((i) => i.keyword === 'ADD')).toEqual([]);
    }
  });

  test('runs as a non-root user, with a health check and a command in exec form', () => {
    const users = finalOf('USER');
    expect(users.length).toBeGreaterThan(0);
    expect(users[users.length - 1].args[0]).not.toMatch(/^(root|0)(:|$)/);
    const [healthcheck] = finalOf('HEALTHCHECK');
    expect(healthcheck?.execForm).toBe(true);
    const [command] = finalOf('CMD');
    expect(command.execForm).toBe(true);
    expect(command.args[0]).toBe('node');
    // The compiled entry point is what the build stage produces from a source file that exists.
    const entry = command.args[1];
    expect(entry).toMatch(/^dist\/.*\.js$/);
    expect(fs.existsSync(path.join(REPO, entry.replace(/^dist\//, '').replace(/\.js$/, '.ts')))).toBe(true);
  });
});

test('the GPU worker builds on CUDA with tfjs-node-gpu installed (optional dependencies kept)', () => {
  const stages = stagesOfFile('worker-gpu.Dockerfile');
  expect(stages[stages.length - 1].base).toMatch(/^nvidia\/cuda:/);
  const installs = stages.flatMap((s) => s.instructions).filter((i) => i.keyword === 'RUN' && i.args.join(' ').includes('npm ci'));
  expect(installs.map((i) => i.args.join(' '))).toEqual([expect.not.stringContaining('--omit=optional')]);
  expect(JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')).optionalDependencies).toHaveProperty('@tensorflow/tfjs-node-gpu');
});

// ---------------------------------------------------------------- docker compose

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  volumes?: string[];
  healthcheck?: { test: string[] };
}

describe('deploy/compose/compose.yaml', () => {
  const composeDir = path.join(DEPLOY, 'compose');
  const compose = yaml.load(fs.readFileSync(path.join(composeDir, 'compose.yaml'), 'utf8')) as { services: Record<string, ComposeService>; volumes: Record<string, unknown> };

  test('one host: PostgreSQL, NATS with JetStream, the gateway and a worker, built from the shipped Dockerfiles', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['gateway', 'nats', 'postgres', 'worker']);
    for (const name of ['gateway', 'worker']) {
      const { build } = compose.services[name];
      expect(path.resolve(composeDir, build!.context)).toBe(REPO);
      expect(DOCKERFILES.map((f) => `deploy/docker/${f}`)).toContain(build!.dockerfile);
    }
    expect(compose.services.gateway.environment).toMatchObject({ DATABASE_URL: expect.stringMatching(/@postgres:5432\//), NATS_URL: 'nats://nats:4222' });
    expect(compose.services.worker.environment).toMatchObject({ NATS_URL: 'nats://nats:4222' });
  });

  test('dependencies wait for healthy services that exist; named volumes are declared; our variables are documented', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      for (const [dependency, { condition }] of Object.entries(service.depends_on ?? {})) {
        expect([name, dependency, condition]).toEqual([name, dependency, 'service_healthy']);
        expect(compose.services[dependency].healthcheck).toBeDefined();
      }
      for (const volume of service.volumes ?? []) expect(Object.keys(compose.volumes)).toContain(volume.split(':')[0]);
      if (service.build) for (const variable of Object.keys(service.environment ?? {})) expect([variable, DOCUMENTED_VARIABLES.has(variable)]).toEqual([variable, true]);
    }
    // Secrets are required from the environment, never written in the file.
    expect(compose.services.gateway.environment!.GATEWAY_ADMIN_TOKEN).toMatch(/^\$\{GATEWAY_ADMIN_TOKEN:\?/);
  });
});
