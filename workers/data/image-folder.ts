import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from './errors';
import { readInputFile } from './files';
import { decodeImage, isImageFileName } from './image';
import type { RawImage, RawImageSource } from './types';

/**
 * An image folder: `root/<class>/<image>.png|jpg`, one subfolder per class. Images lying directly
 * in `root` (no subfolders) form an unlabeled dataset. Decoding is lazy, one image at a time.
 */
export async function openImageFolder(root: string, classNames: readonly string[] | undefined, maxFileBytes?: number): Promise<RawImageSource> {
  const entries = await listDir(root);
  const folders = entries.filter((e) => e.isDirectory()).map((e) => e.name).sort();
  const files: string[] = [];
  let labels: Int32Array | undefined;
  let names: readonly string[] | undefined;
  if (folders.length > 0) {
    const numbered = folders.every((f) => /^\d+$/.test(f));
    const indices = numbered ? folders.map(Number) : resolveClassIndices(folders, classNames, root);
    const labelList: number[] = [];
    for (const [i, folder] of folders.entries()) {
      const images = (await listDir(join(root, folder))).filter((e) => e.isFile() && isImageFileName(e.name)).map((e) => e.name).sort();
      for (const name of images) {
        files.push(join(root, folder, name));
        labelList.push(indices[i]);
      }
    }
    labels = Int32Array.from(labelList);
    // Numbered folders name no classes; named ones are the classes unless the model names them.
    names = classNames ?? (numbered ? undefined : folders);
  } else {
    for (const e of entries) if (e.isFile() && isImageFileName(e.name)) files.push(join(root, e.name));
    files.sort();
  }
  if (files.length === 0) throw new InputError(`${root}: no PNG or JPEG images found (expected <class>/<image>.png or images in the folder)`);
  return {
    count: files.length,
    labels,
    classNames: names,
    description: `image folder ${root} (${files.length} images${labels ? `, ${folders.length} classes` : ', unlabeled'})`,
    async image(index: number): Promise<RawImage> {
      return decodeImage(await readInputFile(files[index], 'image', maxFileBytes), files[index]);
    },
  };
}

/**
 * Label index of each named class folder (folders sorted by name). With the model's class names, a
 * folder takes the index of its name (case-insensitive; `/` in a class name may be written as `_`
 * or `-`, since it cannot appear in a folder name); otherwise folders are numbered in sorted order.
 */
export function resolveClassIndices(folders: readonly string[], classNames: readonly string[] | undefined, root: string): number[] {
  if (!classNames) return folders.map((_, i) => i);
  const canonical = (s: string): string => s.toLowerCase().replace(/[/_\-\s]+/g, ' ').trim();
  const lookup = new Map(classNames.map((name, i) => [canonical(name), i]));
  return folders.map((f) => {
    const index = lookup.get(canonical(f));
    if (index === undefined) {
      throw new InputError(`${join(root, f)}: folder name is not one of the model's classes (${classNames.join(', ')})`);
    }
    return index;
  });
}

async function listDir(dir: string): Promise<import('node:fs').Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InputError(`cannot read image folder ${dir}: ${code === 'ENOENT' ? 'no such directory' : (err as Error).message}`);
  }
}
