import { modelCardPaths, parseModelCard, type ModelCard } from '../../workers/common/model-card';
import { badInput } from '../errors';
import type { LocalFiles } from '../files/local-files';

/** Cards are a few kilobytes; one naming 100,000 classes stays well below this. */
export const MAX_MODEL_CARD_BYTES = 4 * 1024 * 1024;

/** A model card found for a registration, and where it came from (for errors and the audit log). */
export interface RegistrationCard {
  card: ModelCard;
  source: string;
}

export interface CardSources {
  localFiles: LocalFiles;
  /** The bytes of an uploaded artifact, refused past `maxBytes`. */
  readArtifact(sha256: string, what: string, maxBytes: number): Promise<Buffer>;
}

/**
 * The card a registration draws its defaults from: the uploaded one (`cardArtifactSha256`) when
 * given, else `<model>.card.json` beside `localPath`, else none.
 */
export async function findRegistrationCard(
  request: { cardArtifactSha256?: string; localPath?: string },
  sources: CardSources,
): Promise<RegistrationCard | undefined> {
  if (request.cardArtifactSha256 !== undefined) {
    const source = `cardArtifactSha256 ${request.cardArtifactSha256}`;
    const bytes = await sources.readArtifact(request.cardArtifactSha256, 'cardArtifactSha256', MAX_MODEL_CARD_BYTES);
    return { card: parse(bytes, source), source };
  }
  if (request.localPath === undefined) return undefined;
  for (const candidate of modelCardPaths(request.localPath)) {
    const bytes = await sources.localFiles.readIfPresent(candidate, 'model card', MAX_MODEL_CARD_BYTES);
    if (bytes) return { card: parse(bytes, candidate), source: candidate };
  }
  return undefined;
}

function parse(bytes: Buffer, source: string): ModelCard {
  try {
    return parseModelCard(bytes.toString('utf8'), source);
  } catch (error) {
    throw badInput((error as Error).message);
  }
}
