import { mountCallPage, type CallPageOptions } from './call-page.ts';

declare global {
  interface Window {
    /** Set by an embedding page before this script loads: token URL and the user's credential. */
    voiceCallConfig?: CallPageOptions;
  }
}

mountCallPage(document.getElementById('app')!, window.voiceCallConfig ?? {});
