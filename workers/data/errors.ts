/**
 * An error caused by the user's input (a missing file, a corrupt dataset, a model that does not
 * fit its preprocessing). Its message is one line that says what is wrong and where, so a CLI can
 * print it as is instead of a stack trace.
 */
export class InputError extends Error {
  override readonly name = 'InputError';
}
