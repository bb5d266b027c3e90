// Shared with the workers, which read and write the same files in the embedded setup.
export { FileArtifactStore } from '../../workers/common/artifacts/file-artifact-store';
