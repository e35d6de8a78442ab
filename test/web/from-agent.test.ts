import { ParticipantKind } from 'livekit-client';
import { describe, expect, it } from 'vitest';
import { captionSpeaker, endNoticeReason, isAgent } from '../../edge/web/from-agent.ts';

const agent = { identity: 'agent-AJ_1', kind: ParticipantKind.AGENT };
const me = { identity: 'anon-me', kind: ParticipantKind.STANDARD };
const stranger = { identity: 'someone-else', kind: ParticipantKind.STANDARD };
const notice = (body: unknown) => new TextEncoder().encode(JSON.stringify(body));

describe('only the agent speaks for the assistant', () => {
  it('takes the agent for the agent by its kind, and no one else', () => {
    expect(isAgent(agent)).toBe(true);
    for (const p of [me, stranger, { identity: 'sip', kind: ParticipantKind.SIP }, undefined])
      expect(isAgent(p)).toBe(false);
  });

  it('captions the agent’s stream as the assistant', () => {
    expect(captionSpeaker(agent, me.identity)).toBe('assistant');
  });

  it('captions a stream stamped with the caller’s identity as the caller (the agent transcribing them)', () => {
    expect(captionSpeaker(me, me.identity)).toBe('you');
  });

  it('shows nothing from another participant, or from a sender no longer in the room', () => {
    expect(captionSpeaker(stranger, me.identity)).toBeUndefined();
    expect(captionSpeaker(undefined, me.identity)).toBeUndefined();
  });

  it('takes a call.end reason from the agent', () => {
    expect(endNoticeReason(notice({ reason: 'agent_end_call' }), agent)).toBe('agent_end_call');
  });

  it('takes a call.end reason from the server (no participant, no sender identity): the edge', () => {
    expect(endNoticeReason(notice({ reason: 'agent_unavailable' }), undefined, '')).toBe(
      'agent_unavailable',
    );
  });

  it('ignores a call.end notice from anyone else, or one that is not a notice', () => {
    expect(endNoticeReason(notice({ reason: 'max_duration' }), stranger)).toBeUndefined();
    expect(endNoticeReason(notice({ reason: 'max_duration' }), stranger, '')).toBeUndefined();
    // A sender the page does not know (yet): no participant, but a name that is not the server's.
    expect(endNoticeReason(notice({ reason: 'max_duration' }), undefined, 'x')).toBeUndefined();
    expect(endNoticeReason(notice({ reason: 'max_duration' }), undefined)).toBeUndefined();
    expect(endNoticeReason(new TextEncoder().encode('not json'), agent)).toBeUndefined();
    expect(endNoticeReason(notice({ reason: 42 }), agent)).toBeUndefined();
    expect(endNoticeReason(notice(null), agent)).toBeUndefined();
  });
});
