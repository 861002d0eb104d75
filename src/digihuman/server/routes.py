"""The HTTP half of the API, version 1: health, characters, one-shot `say`, sessions and their turns.

Errors are `{"error": "one line naming the fix"}` with a fitting status: 400 bad input, 404 unknown,
409 a name taken, 413 too large, 415 wrong content type, 503 the server is full.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.datastructures import FormData, UploadFile

from digihuman import __version__
from digihuman.character import Character, create_character, find_character, list_characters
from digihuman.errors import BackendError, CharacterError, UserError
from digihuman.server import protocol
from digihuman.server.sessions import ServerBusy, SessionManager, UnknownSession, character_info

logger = logging.getLogger(__name__)

MAX_PORTRAIT_BYTES = 20 * 1024 * 1024
MAX_VOICE_BYTES = 20 * 1024 * 1024
MAX_FORM_BYTES = MAX_PORTRAIT_BYTES + MAX_VOICE_BYTES + 64 * 1024
MAX_JSON_BODY = 64 * 1024
PORTRAIT_TYPES = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp"}
VOICE_TYPES = {
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "audio/wave": ".wav",
    "audio/vnd.wave": ".wav",
    "audio/flac": ".flac",
    "audio/mpeg": ".mp3",
    "audio/ogg": ".ogg",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class CharacterInfo(BaseModel):
    id: str
    name: str
    language: str


class Health(BaseModel):
    status: str
    version: str
    protocol: int
    sessions: int
    max_sessions: int


class SayRequest(BaseModel):
    text: str = Field(description=f"What to say (at most {protocol.MAX_TEXT_CHARS:,} characters).")
    character: str | None = Field(None, description="Character id or name (default: the config's).")


class SessionRequest(BaseModel):
    character: str | None = None


class SessionCreated(BaseModel):
    id: str
    character: CharacterInfo
    ws: str


class ErrorBody(BaseModel):
    error: str


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 415, 503)
}


def status_for(exc: UserError) -> int:
    message = str(exc)
    if isinstance(exc, ServerBusy):
        return 503
    if isinstance(exc, UnknownSession) or message.startswith("unknown character"):
        return 404
    if "already exists" in message:
        return 409
    if isinstance(exc, BackendError):
        return 503
    return 400


async def json_body(request: Request) -> dict[str, Any]:
    """A small JSON object body; 415 for another content type, 413 when too large."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise ApiError(415, "send the body as JSON (Content-Type: application/json)")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BODY:
            raise ApiError(413, f"the body is too large: at most {MAX_JSON_BODY // 1024} kB of JSON")
    if not body:
        return {}
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    return data


def checked_text(text: object) -> str:
    if not isinstance(text, str):
        raise ApiError(400, '"text" must be a string')
    if len(text) > protocol.MAX_TEXT_CHARS:
        raise ApiError(413, f"the text is too long: at most {protocol.MAX_TEXT_CHARS:,} characters")
    return text


def lookup(name: object) -> Character:
    if not isinstance(name, str) or not name.strip():
        raise ApiError(400, '"character" must be a character id (see GET /v1/characters)')
    try:
        return find_character(name)
    except CharacterError as exc:
        raise ApiError(status_for(exc), str(exc)) from None


async def read_upload(upload: UploadFile, limit: int, what: str) -> bytes:
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, f"the {what} is too large: at most {limit // (1024 * 1024)} MB")
    return data


def register(app: FastAPI, manager: SessionManager) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, exc.status)

    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_for(exc))

    default_character = manager.settings.character

    @app.get("/v1/health", response_model=Health, tags=["server"])
    async def health() -> Health:
        """The server is up: version, protocol and how many sessions are open."""
        return Health(
            status="ok",
            version=__version__,
            protocol=protocol.PROTOCOL_VERSION,
            sessions=len(manager.sessions),
            max_sessions=manager.limit,
        )

    @app.get("/v1/characters", response_model=list[CharacterInfo], tags=["characters"])
    async def characters() -> list[CharacterInfo]:
        """Shipped and user characters (broken ones are left out)."""
        found = await asyncio.to_thread(list_characters)
        return [CharacterInfo(**character_info(c)) for c in found]

    @app.post(
        "/v1/characters", status_code=201, response_model=CharacterInfo, responses=ERRORS, tags=["characters"]
    )
    async def new_character(request: Request) -> CharacterInfo:
        """Make a character from a portrait (multipart: `name`, `portrait`, optional `voice`, `language`,
        `persona`), with the same checks and messages as `digihuman characters new`."""
        content_type = request.headers.get("content-type", "").lower()
        if not content_type.startswith("multipart/form-data"):
            raise ApiError(415, "send the character as multipart/form-data (name, portrait, voice)")
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_FORM_BYTES:
            raise ApiError(413, "the upload is too large: portrait and voice sample at most 20 MB each")
        form = await request.form(max_files=2, max_fields=8)
        try:
            return await _create_from_form(form, manager)
        finally:
            await form.close()

    @app.post(
        "/v1/say",
        responses={200: {"content": {"video/mp4": {}}}, **ERRORS},
        response_class=Response,
        tags=["speech"],
        openapi_extra={
            "requestBody": {"content": {"application/json": {"schema": SayRequest.model_json_schema()}}}
        },
    )
    async def say(request: Request) -> Response:
        """Speak `text` once with a character's voice and face: an MP4 (H.264 + AAC) as `say -o` makes."""
        body = await json_body(request)
        text = checked_text(body.get("text"))
        character = lookup(body.get("character") or default_character)
        video = await say_mp4(manager, character, text)
        return Response(video, media_type="video/mp4")

    @app.post(
        "/v1/sessions",
        status_code=201,
        response_model=SessionCreated,
        responses=ERRORS,
        tags=["sessions"],
        openapi_extra={
            "requestBody": {"content": {"application/json": {"schema": SessionRequest.model_json_schema()}}}
        },
    )
    async def new_session(request: Request) -> SessionCreated:
        """Open a live session (its own character, memory and brain); then connect to its `ws`."""
        has_body = request.headers.get("content-length", "0") != "0" or "content-type" in request.headers
        body = await json_body(request) if has_body else {}
        manager.check_capacity()
        character = lookup(body.get("character") or default_character)
        session = await manager.create(character.id)
        return SessionCreated(
            id=session.id,
            character=CharacterInfo(**character_info(character)),
            ws=f"/v1/sessions/{session.id}/ws",
        )

    @app.get("/v1/sessions/{session_id}/turns", responses=ERRORS, tags=["sessions"])
    async def turns(session_id: str) -> dict[str, Any]:
        """Every turn's record, as in turns.jsonl (metrics, text spoken, status)."""
        session = manager.get(session_id)
        return {"id": session.id, "turns": list(session.conversation.log.records)}

    @app.delete("/v1/sessions/{session_id}", status_code=204, responses=ERRORS, tags=["sessions"])
    async def close_session(session_id: str) -> Response:
        """Close a session now (its page gets a `closed` event)."""
        session = manager.get(session_id)
        await manager.close(session.id, "closed by the API")
        return Response(status_code=204)


async def _create_from_form(form: FormData, manager: SessionManager) -> CharacterInfo:
    name = form.get("name")
    portrait = form.get("portrait")
    voice = form.get("voice")
    if not isinstance(name, str) or not name.strip():
        raise ApiError(400, "give the character a name (form field 'name')")
    if not isinstance(portrait, UploadFile):
        raise ApiError(400, "attach a portrait photo (form file 'portrait': JPEG, PNG or WebP)")
    portrait_type = (portrait.content_type or "").lower()
    if portrait_type not in PORTRAIT_TYPES:
        raise ApiError(415, f"the portrait must be JPEG, PNG or WebP (got {portrait_type or 'no type'})")
    if voice is not None and not isinstance(voice, UploadFile):
        voice = None if voice == "" else voice
        if voice is not None:
            raise ApiError(400, "the voice sample must be a file (form file 'voice')")
    voice_type = (voice.content_type or "").lower() if isinstance(voice, UploadFile) else ""
    if isinstance(voice, UploadFile) and voice_type not in VOICE_TYPES:
        raise ApiError(415, f"the voice sample must be WAV, FLAC, MP3 or OGG (got {voice_type or 'no type'})")
    language = form.get("language") or "en"
    persona = form.get("persona") or ""
    if not isinstance(language, str) or not isinstance(persona, str):
        raise ApiError(400, "language and persona must be text fields")
    portrait_bytes = await read_upload(portrait, MAX_PORTRAIT_BYTES, "portrait")
    voice_bytes = (
        await read_upload(voice, MAX_VOICE_BYTES, "voice sample") if isinstance(voice, UploadFile) else None
    )
    # Uploads go to a private temporary folder (fixed names: nothing of the client's file name is used).
    folder = Path(tempfile.mkdtemp(prefix="digihuman-upload-"))
    try:
        portrait_path = folder / f"portrait{PORTRAIT_TYPES[portrait_type]}"
        portrait_path.write_bytes(portrait_bytes)
        voice_path = None
        if voice_bytes is not None:
            voice_path = folder / f"voice{VOICE_TYPES[voice_type]}"
            voice_path.write_bytes(voice_bytes)
        character = await asyncio.to_thread(
            create_character,
            name.strip(),
            portrait_path,
            language=language,
            voice_sample=voice_path,
            persona=persona,
            face_size=manager.settings.face.size,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    logger.info("created character %s", character.id)
    return CharacterInfo(**character_info(character))


async def say_mp4(manager: SessionManager, character: Character, text: str) -> bytes:
    """One turn of fixed text recorded to a temporary MP4, returned as bytes."""
    from digihuman.output.recorder import Mp4Recorder
    from digihuman.session import Conversation
    from digihuman.tts.clean import clean_for_speech

    if not clean_for_speech(text).strip():
        raise ApiError(400, "nothing to say: the text is empty (or only symbols, emoji or links)")
    if manager.say_slots.locked():
        raise ServerBusy("the server is busy making other videos; try again in a moment")
    async with manager.say_slots:
        face = manager.settings.face
        with tempfile.TemporaryDirectory(prefix="digihuman-say-") as folder:
            target = Path(folder) / "say.mp4"
            session = Conversation(character, manager.settings)
            try:
                await session.prepare()
                await session.start([Mp4Recorder(target, fps=face.fps, size=face.size)])
                result = await session.speak(text)
            finally:
                await session.aclose()
            if result.status != "ok":
                raise BackendError(f"speaking failed: {result.error or result.status}")
            return await asyncio.to_thread(target.read_bytes)
