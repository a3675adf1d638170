"""A Hub-protocol server on 127.0.0.1, so that tests can run the real `push_to_hub` and `from_pretrained` offline.

No Hub server is reachable from the test machines and no installable server accepts Hub uploads, so this module
implements the HTTP endpoints that huggingface_hub 2.4.0 calls for a push followed by a download, with the URLs,
headers and JSON shapes its client code reads (file references are to `huggingface_hub/` in the venv):

Hub origin (`LocalHub.url`, what `HF_ENDPOINT` points at):
    POST /api/repos/create                               hf_api.py `create_repo` (409 when it exists)
    POST /api/validate-yaml                              hf_api.py `_validate_yaml` (README.md front matter)
    POST /api/models/{repo}/preupload/{rev}              _commit_api.py `_fetch_upload_modes`
    POST /{repo}.git/info/lfs/objects/batch              lfs.py `post_lfs_batch_info` (basic transfer only)
    POST /{repo}.git/info/lfs/objects/verify             lfs.py `lfs_upload` (verify action)
    POST /api/models/{repo}/commit/{rev}                 _commit_api.py `_send_commit` (NDJSON)
    POST /api/models/{repo}/branch/{branch}              hf_api.py `create_branch` (409 when it exists)
    GET  /api/models/{repo}[/revision/{rev}]             hf_api.py `model_info` / `repo_info`
    GET  /api/models/{repo}/tree/{rev}[/{path}]          hf_api.py `list_repo_tree` / `list_repo_files`
    HEAD, GET /{repo}/resolve/{rev}/{path}               file_download.py `get_hf_file_metadata`, `http_get`
    GET  /api/agent-harnesses                            utils/_detect_agent.py (user-agent telemetry; empty list)
Storage origin (`LocalHub.storage_url`, a second port: the client treats it as a CDN and must not send the token):
    PUT /{sha256}                                        lfs.py `_upload_single_part`
    HEAD, GET /{sha256}                                  file_download.py `http_get` after the resolve redirect

Regular files are answered with `ETag` = git blob sha1 and `X-Repo-Commit`; LFS files with a 302 to the storage
origin carrying `X-Linked-Etag` (sha256), `X-Linked-Size` and `X-Repo-Commit`, as the Hub does. A file is stored
as LFS when the repo's `.gitattributes` (written at creation, like the Hub's default) matches it, when it is 10 MB
or more, or when its first 512 bytes contain a NUL byte. Errors carry the `X-Error-Code` values that
`utils/_http.py::hf_raise_for_status` maps to exceptions (RepoNotFound, RevisionNotFound, EntryNotFound).

Dataset repos (`/api/datasets/...`, `/datasets/{repo}/resolve/...`) are served read-only, for `datasets.load_dataset`:
they are put on the server with `seed_repo(..., repo_type="dataset")`.

Not implemented, on purpose: real authentication (one bearer token is compared; any user owns every namespace),
Xet storage (run clients with `HF_HUB_DISABLE_XET=1`), multipart LFS, pull requests, dataset uploads, spaces,
rate limits, gated repos, Range requests. Every request and every unknown route is recorded so that a test can
assert the client used nothing else.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

MAX_BODY_BYTES = 256 * 1024 * 1024  # far above what a test pushes; bounds every read
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024  # the Hub stores files of 10 MB and more with LFS
DEFAULT_NAMESPACE = "local-user"  # owner of repos created without an organization (the Hub uses the token's user)
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.bin",
        "*.ckpt",
        "*.h5",
        "*.msgpack",
        "*.npy",
        "*.npz",
        "*.onnx",
        "*.pkl",
        "*.pt",
        "*.pth",
        "*.safetensors",
        "*.tar",
        "*.gz",
        "*.zip",
    )
)

_REPO = r"(?P<repo>[^/]+/[^/]+?)"
_KIND = r"(?P<kind>models|datasets)"
_ROUTES = [
    ("POST", re.compile(r"^/api/repos/create$"), "create_repo"),
    ("POST", re.compile(r"^/api/validate-yaml$"), "validate_yaml"),
    ("GET", re.compile(r"^/api/agent-harnesses$"), "agent_harnesses"),
    ("POST", re.compile(rf"^/api/{_KIND}/{_REPO}/preupload/(?P<rev>[^/]+)$"), "preupload"),
    ("POST", re.compile(rf"^/api/{_KIND}/{_REPO}/commit/(?P<rev>[^/]+)$"), "commit"),
    ("POST", re.compile(rf"^/api/{_KIND}/{_REPO}/branch/(?P<rev>[^/]+)$"), "create_branch"),
    ("POST", re.compile(rf"^/{_REPO}\.git/info/lfs/objects/batch$"), "lfs_batch"),
    ("POST", re.compile(rf"^/{_REPO}\.git/info/lfs/objects/verify$"), "lfs_verify"),
    ("GET", re.compile(rf"^/api/{_KIND}/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.+))?$"), "tree"),
    ("GET", re.compile(rf"^/api/{_KIND}/{_REPO}(?:/revision/(?P<rev>[^/]+))?$"), "model_info"),
    ("GET", re.compile(rf"^/(?:(?P<kind>datasets)/)?{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"), "resolve"),
    ("HEAD", re.compile(rf"^/(?:(?P<kind>datasets)/)?{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"), "resolve"),
]


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob: what the Hub reports as the oid/ETag of a regular file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class StoredFile:
    """One file of one commit: regular files keep their bytes, LFS files point into the object store."""

    size: int
    oid: str  # git blob sha1 (regular) or sha256 (LFS)
    lfs: bool
    data: bytes = b""


@dataclass
class Commit:
    oid: str
    parent: str | None
    summary: str
    files: dict[str, StoredFile]


@dataclass
class Repo:
    repo_id: str
    private: bool
    branches: dict[str, str] = field(default_factory=dict)  # branch -> commit oid
    commits: dict[str, Commit] = field(default_factory=dict)  # commit oid -> commit

    def resolve(self, revision: str) -> Commit | None:
        """A branch name or a full commit oid, as the client may send either."""
        oid = self.branches.get(revision, revision)
        return self.commits.get(oid)


class HubError(Exception):
    """An HTTP error answer: status, message and the `X-Error-Code` the client maps to an exception."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None, **payload):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}
        self.payload = payload  # extra JSON fields the client reads from an error answer


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    @classmethod
    def json(cls, payload, status: int = 200, headers: dict | None = None) -> Reply:
        return cls(status, json.dumps(payload).encode(), headers or {})


class LocalHub:
    """Two loopback HTTP servers (Hub API + LFS storage) over one in-memory store; use as a context manager."""

    def __init__(self, token: str, host: str = "127.0.0.1"):
        if host not in ("127.0.0.1", "localhost"):
            raise ValueError("LocalHub serves loopback only")
        self.token = token
        self.repos: dict[str, Repo] = {}  # model repos
        self.dataset_repos: dict[str, Repo] = {}  # dataset repos (served read-only: `seed_repo(..., repo_type=)`)
        self.lfs_objects: dict[str, bytes] = {}  # sha256 -> content
        self.requests: list[tuple[str, str, str, int]] = []  # (origin, method, path, status)
        self.unhandled: list[tuple[str, str]] = []  # (method, path) of routes this server does not know
        self.storage_requests_with_auth: list[str] = []  # must stay empty: the client drops the token off-Hub
        self._lock = threading.RLock()
        self._commit_counter = 0
        self._servers = [self._make_server(host, "hub"), self._make_server(host, "storage")]
        self._threads: list[threading.Thread] = []

    # ----- life cycle -----

    def _make_server(self, host: str, origin: str) -> ThreadingHTTPServer:
        server = ThreadingHTTPServer((host, 0), _Handler)  # port 0: the OS picks a free port
        server.daemon_threads = True
        server.hub, server.origin = self, origin
        return server

    @property
    def url(self) -> str:
        host, port = self._servers[0].server_address[:2]
        return f"http://{host}:{port}"

    @property
    def storage_url(self) -> str:
        host, port = self._servers[1].server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LocalHub:
        for server in self._servers:
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # ----- reading the store (for assertions) -----

    def file_bytes(self, repo_id: str, path: str, revision: str = "main") -> bytes:
        with self._lock:
            stored = self.repos[repo_id].resolve(revision).files[path]
            return self.lfs_objects[stored.oid] if stored.lfs else stored.data

    def files(self, repo_id: str, revision: str = "main") -> dict[str, StoredFile]:
        with self._lock:
            return dict(self.repos[repo_id].resolve(revision).files)

    def history(self, repo_id: str, branch: str = "main") -> list[Commit]:
        """Commits from the branch head back to the repo's creation, newest first."""
        with self._lock:
            repo = self.repos[repo_id]
            commit, commits = repo.commits[repo.branches[branch]], []
            for _ in range(len(repo.commits)):  # bounded walk: a parent chain cannot be longer than the commit set
                commits.append(commit)
                if commit.parent is None:
                    break
                commit = repo.commits[commit.parent]
            return commits

    # ----- request dispatch -----

    def handle(self, origin: str, method: str, raw_path: str, headers, body: bytes) -> Reply:
        split = urlsplit(raw_path)
        query = {key: values[-1] for key, values in parse_qs(split.query).items()}
        authorized = headers.get("Authorization") == f"Bearer {self.token}"
        if origin == "storage":
            if headers.get("Authorization") is not None:
                self.storage_requests_with_auth.append(f"{method} {split.path}")
            return self._storage(method, split.path.lstrip("/"), body)
        for route_method, pattern, name in _ROUTES:
            match = pattern.match(split.path) if route_method == method else None
            if match:
                # path segments were quoted by the client (`quote(revision, safe="")`): unquote them one by one
                params = {key: unquote(value) for key, value in match.groupdict().items() if value is not None}
                with self._lock:
                    return getattr(self, f"_{name}")(
                        method=method, query=query, body=body, authorized=authorized, **params
                    )
        self.unhandled.append((method, split.path))
        raise HubError(404, f"LocalHub does not implement {method} {split.path}")

    def _store(self, kind: str) -> dict[str, Repo]:
        return self.dataset_repos if kind == "datasets" else self.repos

    def _repo(self, repo_id: str, authorized: bool, kind: str = "models") -> Repo:
        repo = self._store(kind).get(repo_id)
        if repo is None or (repo.private and not authorized):
            # the Hub answers the same for a missing repo and a private one without credentials
            raise HubError(404 if repo is None else 401, f"Repository {repo_id} not found", "RepoNotFound")
        return repo

    def _commit_at(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Revision {revision} not found in {repo.repo_id}", "RevisionNotFound")
        return commit

    @staticmethod
    def _require_token(authorized: bool) -> None:
        if not authorized:
            raise HubError(401, "Invalid credentials in Authorization header")

    def _new_commit(self, repo: Repo, parent: str | None, summary: str, files: dict[str, StoredFile]) -> Commit:
        self._commit_counter += 1
        listing = json.dumps(sorted((path, stored.oid) for path, stored in files.items()))
        oid = hashlib.sha1(f"{self._commit_counter}\n{parent}\n{summary}\n{listing}".encode()).hexdigest()
        commit = Commit(oid, parent, summary, files)
        repo.commits[oid] = commit
        return commit

    def seed_repo(
        self, repo_id: str, files: dict[str, bytes], *, private: bool = False, repo_type: str = "model"
    ) -> Commit:
        """Put a repo with `files` on the server directly (as if someone had pushed it): for tests that download
        from repos laid out like public ones (`repo_type="dataset"` for `datasets.load_dataset`). Files are stored
        as a push would store them (LFS by the default `.gitattributes`, size or binary content)."""
        with self._lock:
            repo = Repo(repo_id, private=private)
            gitattributes = DEFAULT_GITATTRIBUTES.encode()
            stored = {
                ".gitattributes": StoredFile(len(gitattributes), git_blob_sha1(gitattributes), False, gitattributes)
            }
            initial = self._new_commit(repo, None, "initial commit", dict(stored))
            repo.branches["main"] = initial.oid
            self._store(f"{repo_type}s")[repo_id] = repo
            return self.seed_commit(repo_id, files, repo_type=repo_type)

    def seed_commit(
        self, repo_id: str, files: dict[str, bytes], *, branch: str = "main", repo_type: str = "model"
    ) -> Commit:
        """Add a commit holding `files` (added or replaced) on `branch`, created from main when new."""
        with self._lock:
            repo = self._store(f"{repo_type}s")[repo_id]
            head = repo.commits[repo.branches.get(branch, repo.branches["main"])]
            stored = dict(head.files)
            for path, data in files.items():
                if self._upload_mode(head, path, len(data), data[:512]) == "lfs":
                    oid = hashlib.sha256(data).hexdigest()
                    self.lfs_objects[oid] = data
                    stored[path] = StoredFile(len(data), oid, True)
                else:
                    stored[path] = StoredFile(len(data), git_blob_sha1(data), False, data)
            commit = self._new_commit(repo, head.oid, "seed", stored)
            repo.branches[branch] = commit.oid
            return commit

    # ----- Hub API -----

    def _create_repo(self, *, body: bytes, authorized: bool, **_) -> Reply:
        self._require_token(authorized)
        payload = json.loads(body or b"{}")
        if payload.get("type", "model") != "model":
            raise HubError(400, "LocalHub only hosts model repos")
        repo_id = f"{payload.get('organization') or DEFAULT_NAMESPACE}/{payload['name']}"
        repo_url = f"{self.url}/{repo_id}"
        if repo_id in self.repos:
            # `create_repo(exist_ok=True)` swallows the 409 and then reads `url` from this very answer
            raise HubError(409, "You already created this model repo", url=repo_url)
        repo = Repo(repo_id, private=payload.get("visibility") == "private")
        gitattributes = DEFAULT_GITATTRIBUTES.encode()
        initial = {".gitattributes": StoredFile(len(gitattributes), git_blob_sha1(gitattributes), False, gitattributes)}
        repo.branches["main"] = self._new_commit(repo, None, "initial commit", initial).oid
        self.repos[repo_id] = repo
        return Reply.json({"url": repo_url, "name": repo_id, "id": repo_id})

    def _validate_yaml(self, *, body: bytes, **_) -> Reply:
        import yaml

        content = json.loads(body).get("content", "")
        lines = content.splitlines()
        if lines and lines[0].strip() == "---" and "---" in (line.strip() for line in lines[1:]):
            end = next(i for i, line in enumerate(lines[1:], 1) if line.strip() == "---")
            try:
                metadata = yaml.safe_load("\n".join(lines[1:end]))
            except yaml.YAMLError as error:
                return Reply.json({"errors": [{"message": f"invalid YAML: {error}"}]}, status=400)
            if metadata is not None and not isinstance(metadata, dict):
                return Reply.json({"errors": [{"message": "metadata must be a YAML mapping"}]}, status=400)
        return Reply.json({"errors": [], "warnings": []})

    def _agent_harnesses(self, **_) -> Reply:
        return Reply.json({"standardEnvVars": [], "harnesses": {}})  # detects no agent, as when the Hub is unreachable

    def _upload_mode(self, commit: Commit, path: str, size: int, sample: bytes) -> str:
        gitattributes = commit.files.get(".gitattributes")
        patterns = (
            [line.split()[0] for line in gitattributes.data.decode().splitlines() if "filter=lfs" in line]
            if gitattributes
            else []
        )
        name = path.rsplit("/", 1)[-1]
        if any(fnmatch.fnmatch(name, pattern) for pattern in patterns) or size >= LFS_SIZE_THRESHOLD:
            return "lfs"
        return "lfs" if b"\0" in sample else "regular"

    def _preupload(
        self, *, kind: str = "models", repo: str, rev: str, body: bytes, query: dict, authorized: bool, **_
    ) -> Reply:
        self._require_token(authorized)
        if query.get("create_pr"):
            raise HubError(400, "LocalHub does not implement pull requests")
        commit = self._commit_at(self._repo(repo, authorized, kind), rev)
        answers = []
        for entry in json.loads(body)["files"]:
            sample = base64.b64decode(entry["sample"])
            mode = self._upload_mode(commit, entry["path"], entry["size"], sample)
            existing = commit.files.get(entry["path"])
            remote_oid = existing.oid if existing is not None and existing.lfs == (mode == "lfs") else None
            answers.append({"path": entry["path"], "uploadMode": mode, "shouldIgnore": False, "oid": remote_oid})
        return Reply.json({"files": answers, "commitOid": commit.oid})

    def _lfs_batch(self, *, repo: str, body: bytes, authorized: bool, **_) -> Reply:
        self._require_token(authorized)
        self._repo(repo, authorized)
        payload = json.loads(body)
        if payload.get("operation") != "upload" or "basic" not in payload.get("transfers", ["basic"]):
            raise HubError(400, "LocalHub implements the basic LFS upload transfer only")
        objects = []
        for entry in payload["objects"]:
            answer = {"oid": entry["oid"], "size": entry["size"], "authenticated": True}
            if entry["oid"] not in self.lfs_objects:  # no "actions": the client skips content already stored
                answer["actions"] = {
                    "upload": {"href": f"{self.storage_url}/{entry['oid']}"},
                    "verify": {"href": f"{self.url}/{repo}.git/info/lfs/objects/verify"},
                }
            objects.append(answer)
        return Reply(
            200,
            json.dumps({"transfer": "basic", "objects": objects}).encode(),
            content_type="application/vnd.git-lfs+json",
        )

    def _lfs_verify(self, *, repo: str, body: bytes, authorized: bool, **_) -> Reply:
        self._require_token(authorized)
        self._repo(repo, authorized)
        payload = json.loads(body)
        content = self.lfs_objects.get(payload["oid"])
        if content is None or len(content) != payload["size"]:
            raise HubError(404, f"LFS object {payload['oid']} was not uploaded with size {payload['size']}")
        return Reply.json({"success": True})

    def _commit(
        self, *, kind: str = "models", repo: str, rev: str, body: bytes, query: dict, authorized: bool, **_
    ) -> Reply:
        self._require_token(authorized)
        if query.get("create_pr"):
            raise HubError(400, "LocalHub does not implement pull requests")
        repo_state = self._repo(repo, authorized, kind)
        if rev not in repo_state.branches:
            raise HubError(404, f"Branch {rev} not found in {repo}", "RevisionNotFound")
        head = repo_state.commits[repo_state.branches[rev]]
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "a commit starts with a header line")
        header = lines[0]["value"]
        if header.get("parentCommit") not in (None, head.oid):
            raise HubError(412, f"parent commit {header['parentCommit']} is not the head of {rev}")
        files = dict(head.files)
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            path = value["path"]
            if path.startswith("/") or ".." in path.split("/"):
                raise HubError(400, f"invalid path {path!r}")
            if key == "file":
                if value.get("encoding") != "base64":
                    raise HubError(400, f"unsupported encoding for {path}")
                data = base64.b64decode(value["content"])
                files[path] = StoredFile(len(data), git_blob_sha1(data), False, data)
            elif key == "lfsFile":
                content = self.lfs_objects.get(value["oid"])
                if content is None or value.get("algo", "sha256") != "sha256":
                    raise HubError(400, f"LFS object {value['oid']} for {path} was never uploaded")
                files[path] = StoredFile(len(content), value["oid"], True)
            elif key == "deletedFile":
                if files.pop(path, None) is None:
                    raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            elif key == "deletedFolder":
                files = {name: stored for name, stored in files.items() if not name.startswith(path.rstrip("/") + "/")}
            else:
                raise HubError(400, f"unknown commit operation {key!r}")
        commit = self._new_commit(repo_state, head.oid, header.get("summary", ""), files)
        repo_state.branches[rev] = commit.oid
        commit_url = f"{self.url}/{repo}/commit/{commit.oid}"
        answer = {"success": True, "commitOid": commit.oid, "commitUrl": commit_url, "pullRequestUrl": None}
        return Reply.json(answer)

    def _create_branch(self, *, kind: str = "models", repo: str, rev: str, body: bytes, authorized: bool, **_) -> Reply:
        self._require_token(authorized)
        repo_state = self._repo(repo, authorized, kind)
        if rev in repo_state.branches:
            raise HubError(409, f"Reference already exists: refs/heads/{rev}")
        starting_point = (json.loads(body or b"{}") or {}).get("startingPoint", "main")
        repo_state.branches[rev] = self._commit_at(repo_state, starting_point).oid
        return Reply.json({})

    def _model_info(self, *, kind: str = "models", repo: str, authorized: bool, rev: str = "main", **_) -> Reply:
        repo_state = self._repo(repo, authorized, kind)
        commit = self._commit_at(repo_state, rev)
        return Reply.json(
            {
                "_id": repo,
                "id": repo,
                "modelId": repo,
                "author": repo.split("/")[0],
                "sha": commit.oid,
                "private": repo_state.private,
                "disabled": False,
                "gated": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "library_name": None,
                "lastModified": "2026-01-01T00:00:00.000Z",
                "createdAt": "2026-01-01T00:00:00.000Z",
                "siblings": [{"rfilename": path} for path in sorted(commit.files)],
            }
        )

    def _tree(
        self, *, kind: str = "models", repo: str, rev: str, query: dict, authorized: bool, path: str = "", **_
    ) -> Reply:
        commit = self._commit_at(self._repo(repo, authorized, kind), rev)
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        below = [name for name in sorted(commit.files) if name.startswith(prefix)]
        if prefix and not below:
            raise HubError(404, f"{path} does not exist in {repo}@{rev}", "EntryNotFound")
        recursive = query.get("recursive", "false").lower() in ("true", "1")
        entries, folders = [], set()
        for name in below:
            rest = name[len(prefix) :].split("/")
            for depth in range(1, len(rest) if recursive else min(2, len(rest))):
                folders.add(prefix + "/".join(rest[:depth]))
            if recursive or len(rest) == 1:
                stored = commit.files[name]
                entry = {"type": "file", "path": name, "size": stored.size, "oid": stored.oid}
                if stored.lfs:
                    entry["lfs"] = {"oid": stored.oid, "size": stored.size, "pointerSize": 134}
                entries.append(entry)
        entries += [
            {"type": "directory", "path": folder, "oid": hashlib.sha1(folder.encode()).hexdigest()}
            for folder in sorted(folders)
        ]
        return Reply.json(entries)

    def _resolve(
        self, *, kind: str = "models", method: str, repo: str, rev: str, path: str, authorized: bool, **_
    ) -> Reply:
        commit = self._commit_at(self._repo(repo, authorized, kind), rev)
        stored = commit.files.get(path)
        if stored is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit.oid})
        headers = {"X-Repo-Commit": commit.oid}
        if stored.lfs:
            # like the Hub: redirect to the storage host; the metadata travels on the redirect itself
            headers["Location"] = f"{self.storage_url}/{stored.oid}"
            headers["X-Linked-Etag"] = f'"{stored.oid}"'
            headers["X-Linked-Size"] = str(stored.size)
            # the pointer file's id (the client prefers the linked one)
            headers["ETag"] = f'"{git_blob_sha1(stored.oid.encode())}"'
            return Reply(302, b"", headers, content_type="text/plain")
        headers["ETag"] = f'"{stored.oid}"'
        return Reply(200, stored.data, headers, content_type="application/octet-stream")

    # ----- storage (the "CDN") -----

    def _storage(self, method: str, oid: str, body: bytes) -> Reply:
        if not re.fullmatch(r"[0-9a-f]{64}", oid):
            self.unhandled.append((method, f"storage:/{oid}"))
            raise HubError(404, "unknown storage object")
        if method == "PUT":
            if hashlib.sha256(body).hexdigest() != oid:
                raise HubError(400, "uploaded content does not match its sha256")
            with self._lock:
                self.lfs_objects[oid] = body
            return Reply(200, b"", {"ETag": f'"{oid}"'}, content_type="text/plain")
        if method in ("GET", "HEAD"):
            with self._lock:
                content = self.lfs_objects.get(oid)
            if content is None:
                raise HubError(404, "no such object")
            return Reply(200, content, {"ETag": f'"{oid}"'}, content_type="application/octet-stream")
        self.unhandled.append((method, f"storage:/{oid}"))
        raise HubError(405, f"storage does not accept {method}")


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with a Content-Length on every answer, so the client can keep connections alive."""

    protocol_version = "HTTP/1.1"
    server_version = "LocalHub/1"

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = bytearray()
            while True:  # ends at the zero-size chunk; each chunk grows `body`, which is capped below
                size = int(self.rfile.readline(64).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline(64)  # the empty line after the last chunk (no trailers sent by httpx)
                    return bytes(body)
                if len(body) + size > MAX_BODY_BYTES:
                    raise HubError(413, "request body too large")
                body += self.rfile.read(size)
                self.rfile.readline(64)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise HubError(413, "request body too large")
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        hub: LocalHub = self.server.hub
        try:
            body = self._read_body()
            reply = hub.handle(self.server.origin, self.command, self.path, self.headers, body)
        except HubError as error:
            headers = {"X-Error-Message": error.message, **error.headers}
            if error.code:
                headers["X-Error-Code"] = error.code
            reply = Reply.json({"error": error.message, **error.payload}, status=error.status, headers=headers)
            self.close_connection = error.status == 413  # the rest of that body was never read
        except Exception as error:  # a bug in this server: answer 500 rather than leave the client hanging
            reply = Reply.json({"error": f"LocalHub internal error: {error!r}"}, status=500)
        hub.requests.append((self.server.origin, self.command, self.path, reply.status))
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format, *args) -> None:  # requests are recorded in `LocalHub.requests` instead
        pass
