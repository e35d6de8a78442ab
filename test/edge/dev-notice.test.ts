import { describe, expect, it } from 'vitest';
import { call } from '../support/edge/helpers.ts';

// `npm run dev` without OPENAI_API_KEY runs the agent on the local stand-in and says so on the page.
describe('the call page shows the dev notice npm run dev passes, and nothing otherwise', () => {
  it('DEV_CALL_PAGE_NOTICE set: one escaped line at the top of the page', async () => {
    const notice = 'Stand-in models: canned replies; set OPENAI_API_KEY for real ones <b>';
    const res = await call<string>('/', {}, { DEV_CALL_PAGE_NOTICE: notice });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toBeTruthy();
    expect(res.data).toContain(
      '<main id="app"><p id="dev-notice" role="note"><strong>Stand-in models: canned replies; set OPENAI_API_KEY for real ones &#60;b&#62;</strong></p>',
    );
  });

  it('unset (every deployment): the page as built', async () => {
    const res = await call<string>('/');
    expect(res.status).toBe(200);
    expect(res.data).not.toContain('dev-notice');
  });
});
