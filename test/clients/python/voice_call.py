"""A call on this project's edge from Python, with LiveKit's real-time SDK (`livekit` on PyPI).

What any client does, written once outside JavaScript (docs/clients.md): fetch a token from the
edge's /token (LiveKit's standard token-endpoint contract; the Python SDK has no token source, so a
plain POST), join, hear the assistant, tell why the call ended (docs/clients.md, "The end notice"),
end it for everyone with the participant's own token, and read the edge's JSON errors.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from livekit import rtc

END_TOPIC = "call.end"
END_ATTRIBUTE = "call.end_reason"

# LiveKit's own disconnect, when the agent gave no reason: the names the call page also maps.
DISCONNECT_NAMES = {
    rtc.DisconnectReason.ROOM_DELETED: "ROOM_DELETED",
    rtc.DisconnectReason.ROOM_CLOSED: "ROOM_CLOSED",
    rtc.DisconnectReason.CLIENT_INITIATED: "CLIENT_INITIATED",
    rtc.DisconnectReason.PARTICIPANT_REMOVED: "PARTICIPANT_REMOVED",
    rtc.DisconnectReason.DUPLICATE_IDENTITY: "DUPLICATE_IDENTITY",
    rtc.DisconnectReason.SERVER_SHUTDOWN: "SERVER_SHUTDOWN",
}


class EdgeError(Exception):
    """The edge's error body, `{"error": {"code", "message", "retry_after_seconds"?}}`."""

    def __init__(self, status: int, body: dict):
        error = body.get("error") or {}
        self.status = status
        self.code: str = error.get("code", "unknown")
        self.message: str = error.get("message", "")
        self.retry_after_seconds: int | None = error.get("retry_after_seconds")
        super().__init__(f"{status} {self.code}: {self.message}")


def _post(url: str, credential: str | None, body: dict) -> dict:
    headers = {"content-type": "application/json"}
    if credential:
        headers["authorization"] = f"Bearer {credential}"
    req = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    return _send(req)


def _get(url: str, credential: str) -> dict:
    return _send(urllib.request.Request(url, headers={"authorization": f"Bearer {credential}"}))


def _send(req: urllib.request.Request) -> dict:
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return json.load(res)
    except urllib.error.HTTPError as err:
        try:
            body = json.load(err)
        except ValueError:
            body = {}
        raise EdgeError(err.code, body) from None


async def fetch_token(
    edge: str, credential: str | None, name: str | None = None, **backend: object
) -> dict:
    """POST /token: `server_url`, `participant_token`, `room_name`, `participant_identity`.

    `backend`: what only a backend's key may set (`participant_identity`, `room_config`...).
    """
    body = {"participant_name": name} if name else {}
    return await asyncio.to_thread(_post, f"{edge}/token", credential, {**body, **backend})


def is_agent(participant: rtc.RemoteParticipant | None) -> bool:
    return participant is not None and participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT


@dataclass
class Ending:
    """Why the call ended, in the order a client believes it (the same as the call page)."""

    by_me: str | None = None  # "end_for_all" or "hang_up": what this person did
    agent_reason: str | None = None  # the agent's end notice or attribute, whichever came first
    edge_reason: str | None = None  # a notice without a participant: the edge's, if no agent came
    agent_seen: bool = False  # an agent joined this call at some point
    agent_removed: bool = False  # the agent was removed through the API
    agent_vanished: bool = False  # the agent left the room without a reason
    disconnect: str | None = None  # LiveKit's disconnect reason for this participant
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def reason(self) -> str:
        """An end reason of the wire contract, or `livekit:<DISCONNECT>` when only LiveKit said."""
        if self.by_me == "end_for_all":
            return "api_end_call"
        if self.by_me == "hang_up":
            return "participant_left"
        if self.agent_reason:
            return self.agent_reason
        if self.edge_reason and not self.agent_seen:
            return self.edge_reason
        if self.agent_removed:
            return "api_remove_agent"
        if self.agent_vanished:
            return "error"
        return f"livekit:{self.disconnect or 'UNKNOWN'}"


class VoiceCall:
    """One call: join with a token from the edge, follow the agent, learn how the call ended."""

    def __init__(self, edge: str, token: dict):
        self.edge = edge
        self.token = token
        self.room = rtc.Room()
        self.ending = Ending()
        self.agent: rtc.RemoteParticipant | None = None
        self.agent_joined = asyncio.Event()
        self.agent_audio: rtc.RemoteAudioTrack | None = None
        self.agent_audio_ready = asyncio.Event()
        self.captions: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        # End notices not believed: (reason, whether a participant was named), for a test to see.
        self.ignored_notices: list[tuple[str | None, bool]] = []
        self._wire()

    def _wire(self) -> None:
        room = self.room

        def on_participant(p: rtc.RemoteParticipant) -> None:
            if is_agent(p):
                self.agent = p
                self.ending.agent_seen = True
                self.agent_joined.set()

        room.on("participant_connected", on_participant)

        @room.on("track_subscribed")
        def _(track: rtc.Track, _pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant):
            if is_agent(p) and track.kind == rtc.TrackKind.KIND_AUDIO:
                self.agent_audio = track  # type: ignore[assignment]
                self.agent_audio_ready.set()

        # The end notice counts from the agent. The edge sends one too, through the server (no
        # participant), only for a call no agent took: agent_unavailable. This SDK also gives no
        # participant for a sender it does not know yet (one that joined a moment ago, who can
        # send anything), so such a notice counts only as agent_unavailable, and only if no agent
        # ever joined (Ending.reason).
        @room.on("data_received")
        def _(packet: rtc.DataPacket) -> None:
            if packet.topic != END_TOPIC:
                return
            try:
                reason = json.loads(packet.data).get("reason")
            except (ValueError, AttributeError):
                reason = None  # a malformed notice: the disconnect reason still says something
            sender = packet.participant
            if isinstance(reason, str) and is_agent(sender):
                self.ending.agent_reason = self.ending.agent_reason or reason
            elif reason == "agent_unavailable" and sender is None and not self.ending.agent_seen:
                self.ending.edge_reason = self.ending.edge_reason or reason
            else:
                self.ignored_notices.append((reason, sender is not None))

        @room.on("participant_attributes_changed")
        def _(changed: dict[str, str], p: rtc.Participant) -> None:
            reason = changed.get(END_ATTRIBUTE)
            if reason and isinstance(p, rtc.RemoteParticipant) and is_agent(p):
                self.ending.agent_reason = self.ending.agent_reason or reason

        # The assistant left and the room stays (end mode leave, removed, crashed): the call is
        # over here too. Not on the notice itself: the goodbye that follows it should be heard.
        @room.on("participant_disconnected")
        def _(p: rtc.RemoteParticipant) -> None:
            why = p.disconnect_reason
            if not is_agent(p) or why == rtc.DisconnectReason.ROOM_DELETED:
                return
            if room.connection_state != rtc.ConnectionState.CONN_CONNECTED:
                return  # a reconnect reports everyone gone; the room's own end says the rest
            if why == rtc.DisconnectReason.PARTICIPANT_REMOVED:
                self.ending.agent_removed = True
            elif not self.ending.agent_reason:
                self.ending.agent_vanished = True
            asyncio.ensure_future(self._leave())

        @room.on("disconnected")
        def _(reason: int) -> None:
            self.ending.disconnect = DISCONNECT_NAMES.get(reason, str(reason))
            self.ending.done.set()

        # Captions: the agent's words. (The agent also sends the caller's own words, transcribed, in
        # the caller's name; this client has no use for them.)
        def on_caption(reader: rtc.TextStreamReader, sender: str) -> None:
            async def read() -> None:
                text = await reader.read_all()
                if self.agent and sender == self.agent.identity:
                    await self.captions.put(("assistant", text))

            asyncio.ensure_future(read())

        room.register_text_stream_handler("lk.transcription", on_caption)

    async def join(self) -> None:
        await self.room.connect(self.token["server_url"], self.token["participant_token"])
        for p in self.room.remote_participants.values():
            if is_agent(p):
                self.agent = p
                self.ending.agent_seen = True
                self.agent_joined.set()

    async def say(self, text: str) -> None:
        """Typed words to the assistant (agents listen on `lk.chat`)."""
        await self.room.local_participant.send_text(text, topic="lk.chat")

    async def end_for_everyone(self) -> dict:
        """POST /calls/:room/end with this participant's own token: the room is deleted."""
        self.ending.by_me = "end_for_all"  # first: LiveKit's disconnect can beat the answer
        try:
            return await asyncio.to_thread(
                _post,
                f"{self.edge}/calls/{self.token['room_name']}/end",
                self.token["participant_token"],
                {"mode": "end_for_all"},
            )
        except EdgeError:
            self.ending.by_me = None  # refused: the call goes on
            raise

    async def hang_up(self) -> None:
        self.ending.by_me = self.ending.by_me or "hang_up"
        await self._leave()

    async def _leave(self) -> None:
        # livekit 1.2.1 does not always emit "disconnected" for a disconnect of our own (seen in the
        # e2e suite: the server had closed us, the event never came): the call is over once we
        # are out, or a moment after we asked.
        try:
            await asyncio.wait_for(self.room.disconnect(), 5)
        finally:
            if not self.ending.done.is_set():
                self.ending.disconnect = self.ending.disconnect or "CLIENT_INITIATED"
                self.ending.done.set()

    async def call_record(self) -> dict:
        """GET /calls/:room, the caller's view: `status`, `end_reason`, `end_message`…"""
        return await asyncio.to_thread(
            _get, f"{self.edge}/calls/{self.token['room_name']}", self.token["participant_token"]
        )
