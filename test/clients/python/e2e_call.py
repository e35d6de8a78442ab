"""Drives voice_call.py through one scenario for test/e2e/python-client.test.ts.

    python e2e_call.py <scenario> <edge url> [credential]

Prints one JSON object per line on stdout: what the client saw, for the test to check.
Scenarios: `end-for-everyone` (greeted, then the caller ends the call for everyone), `agent-ends`
(greeted, then "Goodbye!": the agent ends the call), `agent-leaves` (the same with the app's key and
end mode leave: the agent goes, the room stays, the caller leaves), `forged-notice` (another
participant sends a call.end notice: the caller believes only the agent's), `token` (one /token
request).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import numpy as np
from livekit import rtc

from voice_call import END_ATTRIBUTE, END_TOPIC, EdgeError, VoiceCall, fetch_token

LOUD_DBFS = -40  # the speech floor of test/support/speech.ts: the stand-in's TTS is far above it


def report(**what: object) -> None:
    print(json.dumps(what), flush=True)


async def loud_ms(track: rtc.RemoteAudioTrack, counted: list[float]) -> None:
    """Milliseconds of the agent's audio louder than the floor, frame by frame, as it plays."""
    floor = 32768 * 10 ** (LOUD_DBFS / 20)
    async for event in rtc.AudioStream(track, sample_rate=48000, num_channels=1):
        frame = event.frame
        samples = np.frombuffer(frame.data, dtype=np.int16).astype(np.float64)
        if samples.size and np.sqrt(np.mean(samples**2)) > floor:
            counted[0] += 1000 * frame.samples_per_channel / frame.sample_rate


async def greeted(call: VoiceCall) -> None:
    await asyncio.wait_for(call.agent_joined.wait(), 30)
    await asyncio.wait_for(call.agent_audio_ready.wait(), 30)
    counted = [0.0]
    listening = asyncio.ensure_future(loud_ms(call.agent_audio, counted))  # type: ignore[arg-type]
    while True:
        who, text = await asyncio.wait_for(call.captions.get(), 30)
        if who == "assistant" and "Hello!" in text:
            break
    await asyncio.sleep(1)  # the caption closes as playout ends; the audio's tail is in flight
    report(step="greeted", agent=call.agent.identity, greeting=text, loud_ms=round(counted[0]))  # type: ignore[union-attr]
    listening.cancel()


async def ended(call: VoiceCall, timeout: float) -> None:
    await asyncio.wait_for(call.ending.done.wait(), timeout)
    e = call.ending
    report(step="ended", reason=e.reason(), agent_reason=e.agent_reason, disconnect=e.disconnect)


# What the app's backend (its key) sets for a call whose agent only leaves when it ends.
LEAVE_MODE = {"room_config": {"agents": [{"metadata": json.dumps({"end_mode": "leave"})}]}}


async def forge_end_notice(edge: str, credential: str | None, room: str) -> None:
    """Another participant in the call (a token for the same room, from the app's key) sends a
    `call.end` notice and sets `call.end_reason` on itself, as anyone in a room can."""
    token = await fetch_token(edge, credential, "Intruder", room_name=room,
                              participant_identity=f"py-intruder-{os.getpid()}")
    intruder = rtc.Room()
    await intruder.connect(token["server_url"], token["participant_token"])
    # Any reason, and the one the edge sends (which a client takes from no participant).
    for reason in ("max_duration", "agent_unavailable"):
        forged = json.dumps({"reason": reason}).encode()
        await intruder.local_participant.publish_data(forged, reliable=True, topic=END_TOPIC)
    try:
        await intruder.local_participant.set_attributes({END_ATTRIBUTE: "max_duration"})
    except Exception:
        pass  # a token that may not update its own attributes: the data packet is the forgery
    await asyncio.sleep(1)  # long enough for both to reach the caller
    await intruder.disconnect()


async def main(scenario: str, edge: str, credential: str | None) -> None:
    backend = {}
    if scenario == "agent-leaves":
        backend = {"participant_identity": f"py-backend-{os.getpid()}", **LEAVE_MODE}
    if scenario == "forged-notice":
        backend = {"participant_identity": f"py-caller-{os.getpid()}",
                   "room_name": f"py-forged-{os.getpid()}-{int(time.time())}"}
    try:
        token = await fetch_token(edge, credential, "Py Caller", **backend)
    except EdgeError as err:
        report(step="token", status=err.status, code=err.code, message=err.message,
               retry_after_seconds=err.retry_after_seconds)
        return
    report(step="token", status=201, room=token["room_name"], identity=token["participant_identity"])
    if scenario == "token":
        return
    call = VoiceCall(edge, token)
    await call.join()
    try:
        await greeted(call)
        if scenario == "end-for-everyone":
            answer = await call.end_for_everyone()
            report(step="end", already_ended=answer["already_ended"], end_reason=answer["call"]["end_reason"])
            await ended(call, 15)
            # The API end is in the ledger before its answer: the caller's view has it at once.
            report(step="record", **(await call.call_record()))
        elif scenario == "forged-notice":
            await forge_end_notice(edge, credential, token["room_name"])
            report(step="forged", agent_reason=call.ending.agent_reason, connected=call.room.isconnected(),
                   ignored=sorted(r for r, _ in call.ignored_notices),
                   without_participant=sum(1 for _, named in call.ignored_notices if not named))
            await call.say("Thanks, that is all. Goodbye!")
            await ended(call, 30)
        elif scenario in ("agent-ends", "agent-leaves"):
            await call.say("Thanks, that is all. Goodbye!")
            await ended(call, 30)
        else:
            raise SystemExit(f"unknown scenario {scenario}")
    finally:
        await call.room.disconnect()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))
