"""The checkpoint-outputs layout that ``evalkit run`` reads.

::

    ROOT/
      prompts.jsonl            {"id": "dance_01", "prompt": "a woman dancing ...", "tags": ["motion"]}
      <checkpoint>/            one folder per training checkpoint, any name
        checkpoint.json        optional: {"step": 12000, "stage": "lowres", ...}
        <prompt_id>.mp4        one video per prompt, named by prompt id,
        <prompt_id>_s<seed>.mp4  optionally with a seed suffix
      evalkit.db               the results store (written by evalkit)
      report.html              the report (written by evalkit)

Stages, in curriculum order: image, lowres, midres, highres, post. Checkpoints are ordered by
``step`` when known, else by name (natural order). Folders whose name starts with ``.`` or
``_`` are ignored.

Skipped with a layout problem naming the path (the run goes on and exits 1): a checkpoint whose
checkpoint.json is bad, a folder named like a video (``clip.mp4/``), and a checkpoint folder or
video that is a symlink resolving outside ROOT (a root shared for review must not expose other
files). Symlinks inside ROOT are followed.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.errors import LayoutError
from evalkit.video import VIDEO_EXTENSIONS

log = logging.getLogger(__name__)

STAGES = ("image", "lowres", "midres", "highres", "post")
_NAME = re.compile(r"^(?P<id>.+?)(?:_s(?P<seed>\d+))?$")


@dataclass(frozen=True)
class Prompt:
    id: str
    prompt: str
    tags: tuple[str, ...] = ()


@dataclass
class Checkpoint:
    name: str
    path: Path
    step: int | None = None
    stage: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VideoItem:
    """One video to evaluate, with what is known about where it came from."""

    path: str
    checkpoint: str | None = None
    prompt_id: str | None = None
    seed: int | None = None
    prompt: str | None = None


@dataclass
class RootLayout:
    root: Path
    checkpoints: list[Checkpoint]
    prompts: dict[str, Prompt]
    items: list[VideoItem]
    problems: list[LayoutError]


def parse_video_name(path: str | Path) -> tuple[str, int | None]:
    """``dance_01_s3.mp4`` -> ``("dance_01", 3)``; ``dance_01.mp4`` -> ``("dance_01", None)``."""
    match = _NAME.match(Path(path).stem)
    if match is None:  # an empty stem cannot happen for a file, but stay total
        return Path(path).stem, None
    seed = match.group("seed")
    return match.group("id"), None if seed is None else int(seed)


def read_prompts(path: str | Path) -> tuple[dict[str, Prompt], list[LayoutError]]:
    """Read a prompts.jsonl: one ``{"id", "prompt", "tags"?}`` object per line.

    Bad lines are returned as :class:`LayoutError` naming ``file:line`` and skipped.
    """
    path = Path(path)
    prompts: dict[str, Prompt] = {}
    problems: list[LayoutError] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        return {}, [LayoutError(str(path), f"cannot read ({exc})")]
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(LayoutError(where, f"not valid JSON ({exc.msg})"))
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or not isinstance(obj.get("prompt"), str):
            problems.append(LayoutError(where, 'expected an object with string "id" and "prompt"'))
            continue
        tags = obj.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            problems.append(LayoutError(where, f'"tags" must be a list of strings, got {tags!r}'))
            tags = []
        if obj["id"] in prompts:
            problems.append(LayoutError(where, f"duplicate prompt id {obj['id']!r}"))
        prompts[obj["id"]] = Prompt(obj["id"], obj["prompt"], tuple(tags))
    return prompts, problems


def read_checkpoint_meta(folder: Path) -> Checkpoint:
    """A checkpoint folder with its optional ``checkpoint.json``.

    Raises:
        LayoutError: checkpoint.json is unreadable, not an object, or has a bad step or stage.
    """
    meta_path = folder / "checkpoint.json"
    checkpoint = Checkpoint(name=folder.name, path=folder)
    if not meta_path.exists():
        return checkpoint
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LayoutError(str(meta_path), f"not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise LayoutError(str(meta_path), f"expected a JSON object, got {type(meta).__name__}")
    step = meta.get("step")
    if step is not None and (not isinstance(step, int) or isinstance(step, bool) or step < 0):
        raise LayoutError(str(meta_path), f'"step" must be a non-negative integer, got {step!r}')
    stage = meta.get("stage")
    if stage is not None and stage not in STAGES:
        raise LayoutError(str(meta_path), f'"stage" must be one of {", ".join(STAGES)}, got {stage!r}')
    checkpoint.step, checkpoint.stage, checkpoint.meta = step, stage, meta
    return checkpoint


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _inside(path: Path, root: Path) -> bool:
    """Whether ``path`` resolves (links and ``..`` followed) to somewhere under ``root``."""
    return path.resolve().is_relative_to(root)


def scan_root(root: str | Path) -> RootLayout:
    """Find checkpoints, prompts and videos under ``root``.

    Problems (bad metadata, unreadable prompts) are collected, not raised, so that one bad
    checkpoint does not stop the others; a missing or non-directory ``root`` raises.
    """
    if not Path(root).is_dir():
        raise LayoutError(str(root), "not a directory")
    # Absolute paths: the store, the report and the widgets (run from notebooks/) must agree on
    # which file a row belongs to whatever the working directory was.
    root = Path(root).resolve()
    problems: list[LayoutError] = []
    prompts: dict[str, Prompt] = {}
    prompts_path = root / "prompts.jsonl"
    if prompts_path.exists():
        prompts, problems = read_prompts(prompts_path)
    else:
        log.warning("%s: no prompts.jsonl; detectors that need a prompt will skip these videos", root)
    checkpoints: list[Checkpoint] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        if not _inside(folder, root):
            problems.append(LayoutError(str(folder), f"expected a checkpoint folder inside {root}, got a link to "
                                                     f"{folder.resolve()}; skipped"))
            continue
        try:
            checkpoints.append(read_checkpoint_meta(folder))
        except LayoutError as exc:
            problems.append(exc)
    checkpoints.sort(key=lambda c: (c.step is None, c.step or 0, _natural_key(c.name)))
    items: list[VideoItem] = []
    for checkpoint in checkpoints:
        for path in sorted(checkpoint.path.iterdir()):
            if path.suffix.lower() not in VIDEO_EXTENSIONS:
                continue
            if path.is_dir():
                problems.append(LayoutError(str(path), "expected a video file, got a directory; skipped"))
                continue
            if not _inside(path, root):
                problems.append(LayoutError(str(path), f"expected a video inside {root}, got a link to "
                                                       f"{path.resolve()}; skipped"))
                continue
            if not path.is_file():  # a dangling link, a socket
                problems.append(LayoutError(str(path), "expected a video file, got something else; skipped"))
                continue
            prompt_id, seed = parse_video_name(path)
            prompt = prompts.get(prompt_id)
            if prompts and prompt is None:
                log.warning("%s: prompt id %r is not in %s", path, prompt_id, prompts_path)
            items.append(VideoItem(str(path), checkpoint.name, prompt_id, seed, prompt.prompt if prompt else None))
    return RootLayout(root, checkpoints, prompts, items, problems)
