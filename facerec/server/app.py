"""The HTTP API of ``facerec serve`` (FastAPI): the CLI's verbs on one workspace, with API keys.

Routes answer with the JSON of the matching CLI command's ``--json`` output. Every error is
``{"error": "<one line>"}`` with a 4xx status (503 while a forget holds the workspace, 507 when the
server's disk is full); a bug is a
500 whose traceback goes to the server's log, never to the client. Images are checked (bounded
read, header size check, decode) before anything is written, so a bad upload changes nothing.

No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations at run time,
and the key checks are closures it could not resolve from strings.
"""


import json
from typing import Annotated

from fastapi import Depends, FastAPI, File, Form, HTTPException, Security, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from gallery import GalleryCorrupt, GalleryError, GalleryWriteError

from .. import __version__
from facerec.server.apikeys import check_key
from ..data.images import ImageError, read_image_file
from ..detect import check_multi_face_rule
from facerec.core.errors import DataError, FaceRecError, WorkspaceBusy, WorkspaceError, storage_problem
from facerec.core.names import validate_name
from facerec.public import to_dict
from facerec.recognition.enrollment import nothing_enrolled
from facerec.workspace.writer import enrolled_people
from .limits import BodyLimit
from .state import Engine, one_line, saved_uploads

_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="a key from `facerec keys add`")
_bearer = HTTPBearer(auto_error=False, description="the same key as `Authorization: Bearer KEY`")


class ForgetRequest(BaseModel):
    names: list[str] = Field(min_length=1, max_length=1000, description="people to erase everywhere")
    method: str = Field("gs-lora", description="as `facerec forget --method`")
    shots: int | None = Field(None, ge=1, description="images per person to unlearn from (default: all)")
    replay: float = Field(1.0, gt=0, le=1, description="share of the replay buffer to retain with")
    steps: int | None = Field(None, ge=1, description="exact GS-LoRA steps (default: by the number of people)")
    set: list[str] = Field(default_factory=list, description="GS-LoRA options KEY=VALUE, as `--set`")
    seed: int = 0


class CalibrateRequest(BaseModel):
    far: float = Field(1e-3, gt=0, lt=1, description="target false-accept rate over the enrolled impostor pairs")


def create_app(engine: Engine, keyless_reads: bool = False) -> FastAPI:
    """The API over ``engine``'s workspace; reads need a key unless ``keyless_reads``."""
    app = FastAPI(title="facerec", version=__version__,
                  description="Face recognition that can forget: enroll, recognize, verify, delete, forget.")
    app.add_middleware(BodyLimit, limit=engine.limits.upload_bytes)
    _error_handlers(app)
    read, write = _key_checks(engine, keyless_reads)
    _gallery_routes(app, engine, read, write)
    _recognition_routes(app, engine, read)
    _forget_routes(app, engine, read, write)
    return app


def _key_checks(engine: Engine, keyless_reads: bool) -> tuple[list, list]:
    """The dependencies of the routes that read and of those that change the workspace."""
    def caller(key: Annotated[str | None, Security(_header)] = None,
               bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None) -> dict | None:
        given = key or (bearer.credentials if bearer else None)
        if not given:
            return None
        record = check_key(engine.keys(), given)
        if record is None:
            raise HTTPException(403, "invalid API key")
        return record

    def reader(record: Annotated[dict | None, Depends(caller)]) -> None:
        if record is None and not keyless_reads:
            raise HTTPException(401, "an API key is needed (X-API-Key or Authorization: Bearer)",
                                headers={"WWW-Authenticate": "Bearer"})

    def writer(record: Annotated[dict | None, Depends(caller)]) -> None:
        if record is None:
            raise HTTPException(401, "an API key is needed to change the workspace (X-API-Key or "
                                     "Authorization: Bearer)", headers={"WWW-Authenticate": "Bearer"})
        if record.get("scope") != "write":
            raise HTTPException(403, f"key {record['name']!r} may only read")

    return [Depends(reader)], [Depends(writer)]


Images = Annotated[list[UploadFile], File(description="image files (JPEG, PNG, ...)")]
Aligned = Annotated[bool, Form(description="the images are already 112x112 face crops: skip detection")]
MultiFace = Annotated[str, Form(description="a photo with several faces: 'dominant' (the face that clearly "
                                            "stands out), 'largest' or 'refuse'")]


def _gallery_routes(app: FastAPI, engine: Engine, read: list, write: list) -> None:
    @app.get("/health", summary="liveness, versions and counts (no key needed)")
    def health() -> dict:
        return {"status": "ok", "version": __version__, "model_version": engine.model_version,
                "jobs_pending": engine.jobs.running()}

    @app.get("/people", dependencies=read, summary="enrolled people with their image counts")
    def people() -> dict:
        found = enrolled_people(engine.root)
        return {"people": found, "count": len(found)}

    @app.post("/people/{name}/images", dependencies=write, summary="enroll a person from images")
    def enroll(name: str, images: Images, aligned: Aligned = False, multi_face: MultiFace = "dominant") -> dict:
        validate_name(name)
        check_multi_face_rule(multi_face)  # an unknown rule is refused before anything is read
        uploads = _read_uploads(engine, images)
        with saved_uploads(uploads) as paths:
            _check_images(engine, paths, uploads)  # before the lock: a bad upload waits for nothing, changes nothing
            report = to_dict(engine.enroll({name: (paths, [label for label, _ in uploads])}, multi_face=multi_face,
                                           aligned=aligned))
        if (error := nothing_enrolled(report)) is not None:
            statuses = report["people"][0]["images"]
            raise DataError(f"{error}; " + "; ".join(f"{i['image']}: {i['status']}" for i in statuses))
        return report

    @app.delete("/people/{name}", dependencies=write, summary="remove a person from the gallery and stored crops")
    def delete(name: str) -> dict:
        return engine.remove(name)  # NotEnrolledError: 404

    @app.post("/calibrate", dependencies=write, summary="set the open-set threshold at a false-accept rate")
    def calibrate(body: CalibrateRequest) -> dict:
        return engine.calibrate(far=body.far)


def _recognition_routes(app: FastAPI, engine: Engine, read: list) -> None:
    @app.post("/recognize", dependencies=read, summary="identify every face in images against the gallery")
    def recognize(images: Images, aligned: Aligned = False,
                  top_k: Annotated[int, Form(ge=1, le=50, description="people listed per face")] = 1) -> dict:
        uploads = _read_uploads(engine, images)
        with saved_uploads(uploads) as paths:
            report = _relabel(to_dict(engine.recognize(paths, top_k=top_k, aligned=aligned)), paths, uploads)
        for result in report["results"]:  # read once, by the pipeline, under the server's pixel limit
            if result["status"].startswith("unreadable: "):
                raise ImageError(result["image"], result["status"].removeprefix("unreadable: "))
        return report

    @app.post("/verify", dependencies=read, summary="are the (largest) faces in two images the same person?")
    def verify(image_a: Annotated[UploadFile, File()], image_b: Annotated[UploadFile, File()],
               aligned: Aligned = False) -> dict:
        uploads = _read_uploads(engine, [image_a, image_b])
        with saved_uploads(uploads) as paths:
            _check_images(engine, paths, uploads)
            try:
                return _relabel(to_dict(engine.verify(*paths, aligned=aligned)), paths, uploads)
            except FaceRecError as err:
                raise DataError(_relabel(str(err), paths, uploads)) from None


def _forget_routes(app: FastAPI, engine: Engine, read: list, write: list) -> None:
    @app.post("/forget", dependencies=write, status_code=202,
              summary="erase people from the model, gallery and storage: a job (see /jobs/{id})")
    def forget(body: ForgetRequest) -> dict:
        return _submit_forget(engine, body)

    @app.get("/jobs", dependencies=read, summary="forget jobs, newest last")
    def jobs() -> dict:
        return {"jobs": engine.jobs.list()}

    @app.get("/jobs/{job_id}", dependencies=read, summary="a job's status, and its report when it succeeded")
    def job(job_id: str) -> dict:
        found = engine.jobs.get(job_id)
        if found is None:
            raise HTTPException(404, f"no job {job_id!r}")
        return found

    @app.get("/ledger", dependencies=read, summary="the forget ledger (keyed hashes, never names)")
    def ledger() -> dict:
        from facerec.workspace.erasure import ledger

        return {"ledger": ledger(engine.root) if (engine.root / "workspace.json").exists() else []}


def forget_request(body: ForgetRequest):
    """The request a ``POST /forget`` body asks for (``forgetting.request.ForgetRequest``), checked."""
    from forgetting.request import ForgetRequest as Request

    return Request.build(body.names, method=body.method, settings=body.set, steps=body.steps, seed=body.seed,
                         shots=body.shots, replay_fraction=body.replay)


def _submit_forget(engine: Engine, body: ForgetRequest) -> dict:
    from facerec.workspace.workspace import Workspace

    request = forget_request(body)
    names = list(request.people)
    ws = Workspace(engine.root)
    in_model = set(filter(None, ws.manifest()["identities"])) if ws.exists() else set()
    known = set(enrolled_people(engine.root)) | in_model
    unknown = [n for n in names if n not in known]
    if unknown:
        raise HTTPException(404, f"not enrolled and not in the model: {', '.join(unknown)}")

    def run() -> dict:
        report = engine.forget(request)
        engine.pipeline()  # the new model serves from now on
        return report

    return engine.jobs.submit("forget", run, {"people": len(names), "method": body.method})


def _read_uploads(engine: Engine, files: list[UploadFile]) -> list[tuple[str, bytes]]:
    if not files:
        raise DataError("no image was uploaded")
    if len(files) > engine.limits.images:
        raise DataError(f"{len(files)} images in one request; the limit is {engine.limits.images}")
    return [(_label(f.filename, i), f.file.read()) for i, f in enumerate(files)]


def _label(filename: str | None, index: int) -> str:
    name = one_line(filename or "", 200)
    return name or f"upload-{index}"


def _check_images(engine: Engine, paths: list[str], uploads: list[tuple[str, bytes]]) -> None:
    """Every upload must decode as an image within the pixel limit (read from its header before
    anything is allocated) before any work: for enroll, so that a bad upload writes nothing, and for
    verify, whose pair is all or nothing. Recognize needs no second read: it reports the pipeline's."""
    for path, (label, _) in zip(paths, uploads):
        try:
            read_image_file(path, max_pixels=engine.limits.pixels)
        except ImageError as err:
            raise ImageError(label, err.reason) from None


def _relabel(report, paths: list[str], uploads: list[tuple[str, bytes]]):
    """The report with the temporary files' paths replaced by the uploads' names."""
    text = json.dumps(report)
    for path, (label, _) in zip(paths, uploads):
        text = text.replace(json.dumps(path)[1:-1], json.dumps(label)[1:-1])
    return json.loads(text)


def _status(err: FaceRecError) -> int:
    if isinstance(err, WorkspaceBusy):
        return 503
    if isinstance(err, DataError):
        return 422
    if isinstance(err, WorkspaceError):
        return 409
    return 404 if isinstance(err, LookupError) else 400  # an unknown person or model


def _error_handlers(app: FastAPI) -> None:
    def reply(status: int, message: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"error": one_line(message, 1000)}, status_code=status, headers=headers)

    @app.exception_handler(FaceRecError)
    async def _facerec(request, err: FaceRecError):
        return reply(_status(err), str(err), {"Retry-After": "30"} if isinstance(err, WorkspaceBusy) else None)

    @app.exception_handler(GalleryError)
    async def _gallery(request, err: GalleryError):
        if isinstance(err, GalleryWriteError):  # the server's disk, not the request
            return reply(507, str(err))
        hint = "; rebuild it from the stored crops with `facerec reindex`" if isinstance(err, GalleryCorrupt) else ""
        return reply(409, f"{err}{hint}")

    @app.exception_handler(StarletteHTTPException)  # FastAPI's HTTPException and the router's 404/405
    async def _http(request, err: StarletteHTTPException):
        return reply(err.status_code, err.detail, getattr(err, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, err: RequestValidationError):
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return reply(422, f"{where}: {first.get('msg', 'invalid request')}" if where else first.get("msg", "invalid"))

    @app.exception_handler(Exception)
    async def _bug(request, err: Exception):
        import traceback

        if (reason := storage_problem(err)) is not None:  # the server's disk, not a bug
            return reply(507, f"{reason}; whatever the request had not committed was undone")
        traceback.print_exception(err)
        return reply(500, f"internal error ({type(err).__name__}); the server's log has the details")
