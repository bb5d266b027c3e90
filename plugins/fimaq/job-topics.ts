/** Subscription topic of job updates; the job id is the topic id. */
export const JOB_UPDATED_TOPIC = 'QUANTIZATION_JOB_UPDATED';
