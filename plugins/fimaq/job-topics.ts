/** Subscription topic of job updates; the job id is the topic id. */
export const JOB_UPDATED_TOPIC = 'QUANTIZATION_JOB_UPDATED';
/** Change-feed topic of a job another replica updated (it applied a worker's event); the key is the job id. */
export const JOB_CHANGE_TOPIC = 'fimaq.job';
