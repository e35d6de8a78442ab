// The wire contract between the edge and the agent: both sides import only from here.
export * from './end-reasons.ts';
export * from './dispatch-metadata.ts';
export * from './report.ts';
export * from './signing.ts';
export * from './admission.ts';
export * from './sealed-metadata.ts';
export * from './report-refusals.ts';
export * from './error-message.ts';
