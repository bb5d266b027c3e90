import { ImageTooLargeError, imageToTensor } from '../../workers/data';
import { badInput, GatewayError } from '../errors';
import type { ModelRecord } from '../registry/registry-types';
import type { Tensor } from '../tensors/tensor';

/** An encoded image (PNG or JPEG) as the model's input tensor, [1, ...], with its preprocessing. */
export function imageTensor(model: ModelRecord, image: Buffer, maxPixels: number, source = 'the image'): Tensor {
  try {
    const { data, dims } = imageToTensor(image, model.preprocessing, source, maxPixels);
    return { name: model.preprocessing.inputName, datatype: 'FP32', shape: dims, data };
  } catch (error) {
    if (error instanceof ImageTooLargeError) throw new GatewayError('PAYLOAD_TOO_LARGE', `${error.message} (MAX_IMAGE_PIXELS)`);
    throw badInput((error as Error).message);
  }
}
