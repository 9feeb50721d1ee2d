"""Comparing checkpoints: :class:`SideBySide` (one prompt across 2-4 checkpoints, playback in
step, scores beside each) and :class:`BlindedAB` (two checkpoints, sides shuffled and names
hidden until the vote)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import traitlets

from evalkit.widgets._base import PlayerWidget, open_data
from evalkit.widgets._data import Clip, ReviewData
from evalkit.widgets._scoring import VERDICTS, ab_win_rates

MAX_PANELS = 4


def _spread(names: list[str], count: int) -> list[str]:
    """``count`` names evenly spread over ``names`` (first and last included)."""
    if len(names) <= count:
        return names
    picks = np.linspace(0, len(names) - 1, count).round().astype(int)
    return [names[i] for i in dict.fromkeys(picks.tolist())]


class SideBySide(PlayerWidget):
    """The same prompt (and seed) from 2-4 checkpoints, played in step (by time: curriculum
    stages may differ in frame rate), each with its scores and score lanes.

    Args:
        root: the checkpoint root (or an open :class:`ReviewData`).
        db: the store when ``root`` is a path (default ``$EVALKIT_DB``, else ``ROOT/evalkit.db``).
        prompt_id: the prompt to compare.
        seed: its seed (default: the lowest seed present).
        checkpoints: 2-4 checkpoint names (default: up to 4 spread across the curriculum).
        overlay: detector whose maps to overlay (default: the first that has maps).

    Raises:
        ValueError: fewer than 2 or more than 4 checkpoints have this prompt and seed.
    """

    def __init__(self, root: str | Path | ReviewData, prompt_id: str, seed: int | None = None,
                 checkpoints: Sequence[str] | None = None, overlay: str | None = None,
                 db: str | Path | None = None) -> None:
        data = open_data(root, db)
        super().__init__(data, failure_modes=[], mode="compare")
        candidates = [c for c in data.clips() if c.prompt_id == prompt_id]
        seeds = sorted({c.seed for c in candidates}, key=lambda s: (s is not None, s or 0))
        if seed is None and seeds:
            seed = seeds[0]
        by_checkpoint = {c.checkpoint: c for c in candidates if c.seed == seed}
        names = [n for n in data.checkpoints if n in by_checkpoint] if checkpoints is None else list(checkpoints)
        if checkpoints is None:
            names = _spread(names, MAX_PANELS)
        missing = [n for n in names if n not in by_checkpoint]
        if missing:
            raise ValueError(f"SideBySide: expected checkpoints with {prompt_id!r} seed {seed}, got {missing} without it")
        if not 2 <= len(names) <= MAX_PANELS:
            raise ValueError(f"SideBySide: expected 2..{MAX_PANELS} checkpoints with {prompt_id!r} seed {seed}, "
                             f"got {len(names)}")
        self.prompt_id, self.seed = prompt_id, seed
        self.shown = [by_checkpoint[n] for n in names]
        self.clips = [data.clip_payload(c, overlay=overlay) for c in self.shown]
        self.header = {"title": f"{prompt_id}" + ("" if seed is None else f" · seed {seed}")}

    def _shown(self) -> list[Clip]:
        return self.shown

    def scores(self) -> pd.DataFrame:
        """Score per (checkpoint, detector) of the compared clips: rows checkpoints, columns detectors."""
        results = self.data.results()
        hashes = {c.video_hash: c.checkpoint for c in self.shown}
        part = results[results["video_hash"].isin(hashes)].assign(
            checkpoint=lambda d: d["video_hash"].map(hashes))
        table = part.pivot_table(index="checkpoint", columns="detector", values="score", aggfunc="last")
        return table.reindex([c.checkpoint for c in self.shown])


class BlindedAB(PlayerWidget):
    """Blinded pairwise preference between two checkpoints.

    Pairs are clips of the same prompt and seed in both checkpoints, in random order; each pair
    is shown with random left/right sides called A and B, without checkpoint names, paths or
    scores (scores can give a checkpoint away) until the vote. A vote is A, B or tie, with
    optional per-failure-mode verdicts per side and a note; it is stored at once and reveals
    the identities. Pairs this reviewer already voted on are skipped, so a session resumes.

    Args:
        root: the checkpoint root (or an open :class:`ReviewData`).
        db: the store when ``root`` is a path (default ``$EVALKIT_DB``, else ``ROOT/evalkit.db``).
        checkpoint_a, checkpoint_b: the two checkpoints (win rates are reported for ``a``).
        reviewer: who votes (default ``$EVALKIT_REVIEWER`` or the login name).
        seed: random seed of the pair order and sides (default: fresh randomness).
        failure_modes: label keys (default: the detectors with results).
    """

    _events = ("seek", "label", "undo", "vote", "pair")

    revealed = traitlets.Bool(False).tag(sync=True)
    reveal = traitlets.List(traitlets.Dict()).tag(sync=True)
    ab_marks = traitlets.Dict().tag(sync=True)

    def __init__(self, root: str | Path | ReviewData, checkpoint_a: str, checkpoint_b: str, reviewer: str | None = None,
                 seed: int | None = None, failure_modes: list[str] | None = None,
                 db: str | Path | None = None) -> None:
        data = open_data(root, db)
        super().__init__(data, reviewer=reviewer, failure_modes=failure_modes, mode="ab")
        if checkpoint_a == checkpoint_b:
            raise ValueError(f"BlindedAB: expected two different checkpoints, got {checkpoint_a!r} twice")
        self.pair = (checkpoint_a, checkpoint_b)
        self.rng = np.random.default_rng(seed)
        a = {(c.prompt_id, c.seed): c for c in data.clips(checkpoint_a)}
        b = {(c.prompt_id, c.seed): c for c in data.clips(checkpoint_b)}
        keys = sorted(set(a) & set(b), key=lambda k: (str(k[0]), -1 if k[1] is None else k[1]))
        if not keys:
            raise ValueError(f"BlindedAB: expected clips of the same prompt and seed in {checkpoint_a!r} and "
                             f"{checkpoint_b!r}, got none in common")
        voted = self._voted()
        order = self.rng.permutation(len(keys))
        self.pairs = [(a[keys[i]], b[keys[i]]) for i in order if (a[keys[i]].video_hash, b[keys[i]].video_hash) not in voted]
        self.total = len(keys)
        self.position = -1
        self.sides: dict[str, Clip] = {}
        self._revote = False
        self.next_pair()

    def _voted(self) -> set[tuple[str, str]]:
        labels = self.data.labels()
        mine = labels[(labels["kind"] == "ab") & (labels["reviewer"] == self.reviewer)]
        out = set()
        for p in mine["payload"]:
            if isinstance(p, dict) and list(p.get("pair", [])) == list(self.pair):
                by_ckpt = {p["left"]: p["left_hash"], p["right"]: p["right_hash"]}
                out.add((by_ckpt[self.pair[0]], by_ckpt[self.pair[1]]))
        return out

    def _shown(self) -> list[Clip]:
        return list(self.sides.values())

    def on_vote(self, callback: Callable[[dict], Any], remove: bool = False) -> None:
        """Call ``callback(label)`` after a vote is stored (``label["payload"]`` names both sides)."""
        self._register("vote", callback, remove)

    def on_pair(self, callback: Callable[[dict[str, Clip]], Any], remove: bool = False) -> None:
        """Call ``callback({"A": clip, "B": clip})`` when a new pair is shown."""
        self._register("pair", callback, remove)

    def next_pair(self) -> dict[str, Clip] | None:
        """Show the next pair with fresh random sides; None when every pair is voted."""
        if self.position + 1 >= len(self.pairs):
            self.sides = {}
            self.clips, self.revealed, self.reveal = [], False, []
            self.status = "all pairs voted"
            self._update_header(done=True)
            return None
        self.position += 1
        first, second = self.pairs[self.position]
        left, right = (first, second) if self.rng.random() < 0.5 else (second, first)
        self.sides = {"A": left, "B": right}
        with self.hold_sync():
            self.clips = [self.data.clip_payload(c, identity=False, scores=False) for c in (left, right)]
            self.frame, self.playing, self.note = 0, False, ""
            self.revealed, self.reveal = False, []
            self.ab_marks = {"A": {}, "B": {}}
            self._revote = False
            self._update_header()
            self._refresh_labels()
        self._fire("pair", dict(self.sides))
        return dict(self.sides)

    def _update_header(self, done: bool = False) -> None:
        voted = self.total - len(self.pairs) + self.position + (1 if done else 0)
        self.header = {"title": "Which is better? Press a, b or t", "reviewed": [min(voted, self.total), self.total]}

    def toggle_mark(self, side: str, failure_mode: str) -> None:
        """Cycle the verdict on ``failure_mode`` for ``side`` ("A" or "B"): unset -> fail -> pass -> unset."""
        if side not in ("A", "B"):
            raise ValueError(f"toggle_mark: expected side 'A' or 'B', got {side!r}")
        keys = [m["key"] for m in self.failure_modes]
        if failure_mode not in keys:
            raise ValueError(f"toggle_mark: expected a failure mode in {keys}, got {failure_mode!r}")
        marks = {s: dict(v) for s, v in self.ab_marks.items()}
        cycle = {None: "fail", "fail": "pass", "pass": None}
        value = cycle[marks[side].get(failure_mode)]
        if value is None:
            marks[side].pop(failure_mode, None)
        else:
            marks[side][failure_mode] = value
        self.ab_marks = marks

    def vote(self, choice: str, note: str | None = None) -> dict[str, Any]:
        """Store the vote on the shown pair ("A", "B" or "tie") with the marks and note, and
        reveal which checkpoint was which."""
        if choice not in ("A", "B", "tie"):
            raise ValueError(f"vote: expected 'A', 'B' or 'tie', got {choice!r}")
        if not self.sides:
            raise ValueError("vote: expected a pair on screen, got none (all pairs voted)")
        if self.revealed:
            raise ValueError("vote: this pair is already voted; press n for the next one")
        if note is not None:
            self.note = note
        left, right = self.sides["A"], self.sides["B"]
        winner = {"A": left.checkpoint, "B": right.checkpoint, "tie": None}[choice]
        written = 0
        for side, clip in self.sides.items():
            for failure_mode, value in self.ab_marks.get(side, {}).items():
                if value in VERDICTS:
                    self._write_label(clip, kind="clip", failure_mode=failure_mode, value=value, payload={"source": "ab"})
                    written += 1
        label = self._write_label(left, kind="ab", value=choice, note=self.note or None, checkpoint=None, payload={
            "pair": list(self.pair), "left": left.checkpoint, "right": right.checkpoint, "choice": choice,
            "winner": winner, "left_hash": left.video_hash, "right_hash": right.video_hash,
            "left_path": left.path, "right_path": right.path, "marks": self.ab_marks, "revote": self._revote})
        self._group_last(written + 1)
        self.revealed = True
        self.reveal = [self._identity(c) for c in (left, right)]
        self.status = f"A was {left.checkpoint}, B was {right.checkpoint}"
        self._update_header(done=True)
        self._fire("vote", label)
        return label

    def _identity(self, clip: Clip) -> dict[str, Any]:
        results = self.data.results()
        mine = results[results["video_hash"] == clip.video_hash]
        return {"title": clip.checkpoint or "", "path": clip.path,
                "scores": [{"detector": r.detector, "score": None if pd.isna(r.score) else float(r.score),
                            "flagged": bool(r.flagged)} for r in mine.itertuples()]}

    def undo(self) -> list[int]:
        """Remove the newest vote (with its marks). If its pair is still shown it can be voted
        again; that vote is marked ``"revote": true`` in its payload (the names were seen)."""
        ids = super().undo()
        if ids and self.revealed:
            self.revealed, self.reveal = False, []
            self._revote = True
            self._update_header()
        return ids

    def results(self) -> pd.DataFrame:
        """Win rates with 95 % bootstrap CIs from every stored A/B vote (all reviewers)."""
        return ab_win_rates(self.data.labels())

    # page messages -----------------------------------------------------------------------
    def _msg_vote(self, content: dict) -> None:
        self.vote(str(content["choice"]))

    def _msg_mark(self, content: dict) -> None:
        self.toggle_mark(str(content["side"]), str(content["failure_mode"]))

    def _msg_note(self, content: dict) -> None:
        self.note = str(content.get("text", ""))

    def _msg_next(self, _content: dict) -> None:
        self.next_pair()
