// The interface lives with the workers' shared modules, so workers use it without importing the gateway.
export * from '../../workers/common/artifacts/artifact-store';
